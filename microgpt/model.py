"""The GPT of microgpt, written on scalar `Value`s exactly as the original.

Follows GPT-2 with small changes: RMSNorm instead of LayerNorm, no biases, ReLU
instead of GeLU. The model reads one token at a time and keeps the keys and values
of earlier positions in a cache, so the same code serves training and sampling.

Every stage in `microgpt.stages` offers the interface of `GPT` below:
`Model(cfg, vocab_size, weights, adam)`, `num_params`, `train_step(tokens, step,
num_steps) -> float`, `sampler(temperature)` (the next-token probabilities that
`microgpt.sampling` draws from) and `weights()`.
"""

from .config import AdamConfig, GPTConfig
from .engine import Value
from .optim import Adam


def param_shapes(cfg, vocab_size):
    """(name, rows, cols) of every weight matrix, in the order they are initialised."""
    shapes = [
        ("wte", vocab_size, cfg.n_embd),  # token embeddings
        ("wpe", cfg.block_size, cfg.n_embd),  # position embeddings
        ("lm_head", vocab_size, cfg.n_embd),  # projection to next-token logits
    ]
    for i in range(cfg.n_layer):
        shapes += [
            (f"layer{i}.attn_wq", cfg.n_embd, cfg.n_embd),
            (f"layer{i}.attn_wk", cfg.n_embd, cfg.n_embd),
            (f"layer{i}.attn_wv", cfg.n_embd, cfg.n_embd),
            (f"layer{i}.attn_wo", cfg.n_embd, cfg.n_embd),
            (f"layer{i}.mlp_fc1", 4 * cfg.n_embd, cfg.n_embd),
            (f"layer{i}.mlp_fc2", cfg.n_embd, 4 * cfg.n_embd),
        ]
    return shapes


def init_weights(cfg, vocab_size, rng):
    """Gaussian weights as plain floats, drawn from `rng` in microgpt's order."""
    return {
        name: [[rng.gauss(0, cfg.init_std) for _ in range(cols)] for _ in range(rows)]
        for name, rows, cols in param_shapes(cfg, vocab_size)
    }


class LayerWeights:
    """One transformer block's weight matrices, looked up once instead of by name."""

    def __init__(self, state_dict, li):
        prefix = f"layer{li}."
        self.attn_wq = state_dict[prefix + "attn_wq"]
        self.attn_wk = state_dict[prefix + "attn_wk"]
        self.attn_wv = state_dict[prefix + "attn_wv"]
        self.attn_wo = state_dict[prefix + "attn_wo"]
        self.mlp_fc1 = state_dict[prefix + "mlp_fc1"]
        self.mlp_fc2 = state_dict[prefix + "mlp_fc2"]


def linear(x, w):
    """Matrix-vector product: one dot product per row of `w`."""
    return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]


def softmax(logits):
    """Probabilities from logits; subtracting the max keeps exp() from overflowing."""
    max_val = max(val.data for val in logits)
    exps = [(val - max_val).exp() for val in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    """Rescale `x` to unit root-mean-square (no learned gain)."""
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


class GPT:
    """The baseline model: every number is a `Value`, every op a graph node."""

    memory_kind = "values"  # how it stores its numbers: see `microgpt.memory`

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.state_dict = {
            name: [[Value(x) for x in row] for row in mat] for name, mat in weights.items()
        }
        self.params = [p for mat in self.state_dict.values() for row in mat for p in row]
        self.optimizer = Adam(self.params, adam)

    @property
    def num_params(self):
        return len(self.params)

    def weights(self):
        """The parameters as plain floats, keyed like `init_weights`."""
        return {
            name: [[p.data for p in row] for row in mat] for name, mat in self.state_dict.items()
        }

    def forward(self, token_id, pos_id, keys, values):
        """Logits for the token after `token_id`; appends this position's k, v to the cache."""
        cfg, sd = self.cfg, self.state_dict
        tok_emb = sd["wte"][token_id]
        pos_emb = sd["wpe"][pos_id]
        x = [t + p for t, p in zip(tok_emb, pos_emb)]
        x = rmsnorm(x)  # not redundant: the residual stream below bypasses later norms

        for li in range(cfg.n_layer):
            # 1) multi-head causal self-attention
            x_residual = x
            x = rmsnorm(x)
            q = linear(x, sd[f"layer{li}.attn_wq"])
            k = linear(x, sd[f"layer{li}.attn_wk"])
            v = linear(x, sd[f"layer{li}.attn_wv"])
            keys[li].append(k)
            values[li].append(v)
            x_attn = []
            for h in range(cfg.n_head):
                hs = h * cfg.head_dim
                q_h = q[hs : hs + cfg.head_dim]
                k_h = [ki[hs : hs + cfg.head_dim] for ki in keys[li]]
                v_h = [vi[hs : hs + cfg.head_dim] for vi in values[li]]
                attn_logits = [
                    sum(q_h[j] * k_h[t][j] for j in range(cfg.head_dim)) / cfg.head_dim**0.5
                    for t in range(len(k_h))
                ]
                attn_weights = softmax(attn_logits)
                head_out = [
                    sum(attn_weights[t] * v_h[t][j] for t in range(len(v_h)))
                    for j in range(cfg.head_dim)
                ]
                x_attn.extend(head_out)
            x = linear(x_attn, sd[f"layer{li}.attn_wo"])
            x = [a + b for a, b in zip(x, x_residual)]
            # 2) MLP
            x_residual = x
            x = rmsnorm(x)
            x = linear(x, sd[f"layer{li}.mlp_fc1"])
            x = [xi.relu() for xi in x]
            x = linear(x, sd[f"layer{li}.mlp_fc2"])
            x = [a + b for a, b in zip(x, x_residual)]

        return linear(x, sd["lm_head"])

    def empty_cache(self):
        """Fresh per-layer key and value caches for a new sequence."""
        return [[] for _ in range(self.cfg.n_layer)], [[] for _ in range(self.cfg.n_layer)]

    def loss(self, tokens):
        """Mean cross-entropy of predicting each next token, as a graph node."""
        n = self.cfg.positions(len(tokens))
        keys, values = self.empty_cache()
        losses = []
        for pos_id in range(n):
            token_id, target_id = tokens[pos_id], tokens[pos_id + 1]
            logits = self.forward(token_id, pos_id, keys, values)
            probs = softmax(logits)
            losses.append(-probs[target_id].log())
        return (1 / n) * sum(losses)

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        loss = self.loss(tokens)
        loss.backward()
        self.optimizer.step(step, num_steps)
        return loss.data

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the next token's probabilities, as floats."""
        keys, values = self.empty_cache()

        def next_probs(token_id, pos_id):
            logits = self.forward(token_id, pos_id, keys, values)
            return [p.data for p in softmax([logit / temperature for logit in logits])]

        return next_probs


__all__ = [
    "GPT",
    "GPTConfig",
    "LayerWeights",
    "init_weights",
    "linear",
    "param_shapes",
    "rmsnorm",
    "softmax",
]
