"""The GPT's forward pass on plain floats, op for op as the `Value` version.

Used where no gradient is needed (sampling) or where a stage computes a piece of
the model by hand. Divisions are written as the `Value` engine performs them,
`a * b**-1`, so the floats match the graph's to the last bit or close to it.
"""

import math

from .cleanup import LayerWeights


def linear(x, w):
    """Matrix-vector product on floats, one dot product per row of `w`."""
    return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]


def softmax(logits):
    """Probabilities from float logits, as `microgpt.model.softmax` computes them."""
    max_val = max(logits)
    exps = [math.exp(val - max_val) for val in logits]
    inv_total = sum(exps) ** -1
    return [e * inv_total for e in exps]


def rmsnorm(x):
    """Rescale float `x` to unit root-mean-square (no learned gain)."""
    ms = sum(xi * xi for xi in x) * len(x) ** -1
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


class FloatGPT:
    """Forward passes on float copies of a model's weights (for sampling)."""

    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.wte = weights["wte"]
        self.wpe = weights["wpe"]
        self.lm_head = weights["lm_head"]
        self.layers = [LayerWeights(weights, li) for li in range(cfg.n_layer)]
        self.inv_attn_scale = (cfg.head_dim**0.5) ** -1

    def forward(self, token_id, pos_id, keys, values):
        """Float logits for the token after `token_id`; appends k, v to the cache."""
        head_dim, inv_attn_scale = self.cfg.head_dim, self.inv_attn_scale
        x = [t + p for t, p in zip(self.wte[token_id], self.wpe[pos_id])]
        x = rmsnorm(x)
        for layer, layer_keys, layer_values in zip(self.layers, keys, values):
            x_residual = x
            x = rmsnorm(x)
            q = linear(x, layer.attn_wq)
            layer_keys.append(linear(x, layer.attn_wk))
            layer_values.append(linear(x, layer.attn_wv))
            x_attn = []
            for hs in range(0, self.cfg.n_embd, head_dim):
                head = range(hs, hs + head_dim)
                attn_logits = [sum(q[j] * k[j] for j in head) * inv_attn_scale for k in layer_keys]
                attn_weights = softmax(attn_logits)
                x_attn.extend(
                    sum(a * v[j] for a, v in zip(attn_weights, layer_values)) for j in head
                )
            x = linear(x_attn, layer.attn_wo)
            x = [a + b for a, b in zip(x, x_residual)]
            x_residual = x
            x = rmsnorm(x)
            x = [max(0.0, xi) for xi in linear(x, layer.mlp_fc1)]
            x = linear(x, layer.mlp_fc2)
            x = [a + b for a, b in zip(x, x_residual)]
        return linear(x, self.lm_head)


def generate(model, weights, rng, temperature, bos):
    """Sample one sequence on floats, drawing from `rng` exactly as the baseline does."""
    float_gpt = FloatGPT(model.cfg, weights)
    keys = [[] for _ in range(model.cfg.n_layer)]
    values = [[] for _ in range(model.cfg.n_layer)]
    inv_temperature = temperature**-1
    token_id = bos
    sample = []
    for pos_id in range(model.cfg.block_size):
        logits = float_gpt.forward(token_id, pos_id, keys, values)
        probs = softmax([logit * inv_temperature for logit in logits])
        token_id = rng.choices(range(model.vocab_size), weights=probs)[0]
        if token_id == bos:
            break
        sample.append(token_id)
    return sample
