"""Stage `torch`: the same model in PyTorch (float64), with the baseline's Adam.

(The module is `torch_oracle`, not `torch`, so that it never shadows PyTorch.)

A side variant, not a pass: PyTorch's autograd computes the gradients, so this stage
is the oracle the hand-written backward passes of `flat` and `tensor` are checked
against (`loss_and_grads`), and the way to train larger configurations. The forward
pass takes the whole name at once with a causal mask, like `tensor`; Adam is written
out with exactly the baseline's formula rather than `torch.optim.Adam`, whose update
differs in rounding (it folds the bias corrections differently).
"""

import math

import torch

from ..config import AdamConfig
from ..model import param_shapes


class Model:
    """microgpt as float64 torch tensors; gradients by autograd, Adam by hand."""

    memory_kind = "float64"  # see `microgpt.memory`

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.adam = adam
        self.names = [name for name, _, _ in param_shapes(cfg, vocab_size)]
        self.params = {
            name: torch.tensor(weights[name], dtype=torch.float64, requires_grad=True)
            for name in self.names
        }
        self.m = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.v = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.mask = torch.zeros((0, 0), dtype=torch.float64)  # the largest causal mask so far
        if cfg.n_embd <= 64:
            # matrices this small gain nothing from intra-op threads and lose to their
            # hand-offs, many times over on a 2-core machine
            torch.set_num_threads(1)

    @property
    def num_params(self):
        return sum(p.numel() for p in self.params.values())

    def weights(self):
        """The parameters keyed like `init_weights`, as lists of rows of floats."""
        return {name: p.detach().tolist() for name, p in self.params.items()}

    def causal_mask(self, T):
        if T > len(self.mask):
            self.mask = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
        return self.mask[:T, :T]

    def forward(self, ids):
        """Logits (T, V) for a list of T token ids, every position at once."""
        cfg, p = self.cfg, self.params
        T, H, D = len(ids), cfg.n_head, cfg.head_dim
        x = rmsnorm(p["wte"][ids] + p["wpe"][:T])
        for li in range(cfg.n_layer):
            x_in = x
            x = rmsnorm(x)
            q, k, v = (x @ p[f"layer{li}.attn_{w}"].T for w in ("wq", "wk", "wv"))
            q, k, v = (t.view(T, H, D).transpose(0, 1) for t in (q, k, v))
            att = (q @ k.transpose(1, 2)) * (D**0.5) ** -1 + self.causal_mask(T)
            heads = (torch.softmax(att, dim=-1) @ v).transpose(0, 1).reshape(T, cfg.n_embd)
            x = heads @ p[f"layer{li}.attn_wo"].T + x_in
            x_mid = x
            x = torch.relu(rmsnorm(x) @ p[f"layer{li}.mlp_fc1"].T)
            x = x @ p[f"layer{li}.mlp_fc2"].T + x_mid
        return x @ p["lm_head"].T

    def loss(self, tokens):
        """Mean cross-entropy of predicting each next token, as a torch scalar."""
        n = self.cfg.positions(len(tokens))
        logits = self.forward(tokens[:n])
        return torch.nn.functional.cross_entropy(logits, torch.tensor(tokens[1 : n + 1]))

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        loss = self.loss(tokens)
        loss.backward()
        self.adam_step(step, num_steps)
        return loss.item()

    @torch.no_grad()
    def adam_step(self, step, num_steps):
        """The baseline's Adam, formula for formula, then the gradients are cleared."""
        cfg = self.adam
        lr_t = cfg.lr_at(step, num_steps)
        bias1, bias2 = cfg.bias_corrections(step)
        for name, p in self.params.items():
            g, m, v = p.grad, self.m[name], self.v[name]
            m.mul_(cfg.beta1).add_((1 - cfg.beta1) * g)
            v.mul_(cfg.beta2).add_((1 - cfg.beta2) * (g * g))
            m_hat = m / bias1
            v_hat = v / bias2
            p.sub_(lr_t * m_hat / (v_hat.sqrt() + cfg.eps))
            p.grad = None

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)`: the whole prefix again, the last row's softmax."""
        ids = []

        @torch.no_grad()
        def next_probs(token_id, pos_id):
            ids.append(token_id)
            logits = self.forward(ids)[-1] * temperature**-1
            return torch.softmax(logits, dim=-1).tolist()

        return next_probs


def rmsnorm(x):
    """Rescale each row of `x` to unit root-mean-square (no learned gain)."""
    return x * ((x * x).mean(dim=-1, keepdim=True) + 1e-5) ** -0.5


def loss_and_grads(cfg, vocab_size, weights, tokens):
    """(loss, gradients keyed like `weights`) for one name: the gradient oracle for tests."""
    model = Model(cfg, vocab_size, weights)
    loss = model.loss(tokens)
    loss.backward()
    return loss.item(), {name: p.grad.tolist() for name, p in model.params.items()}
