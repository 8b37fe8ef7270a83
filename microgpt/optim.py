"""Adam, the optimizer microgpt uses: on `Value` parameters, and on flat lists of floats."""

from math import sqrt

from .config import AdamConfig


class Adam:
    """Adam with bias correction and linear learning-rate decay to zero."""

    def __init__(self, params, cfg=AdamConfig()):
        self.params = params
        self.cfg = cfg
        self.m = [0.0] * len(params)  # running mean of gradients
        self.v = [0.0] * len(params)  # running mean of squared gradients

    def step(self, step, num_steps):
        """Update every parameter from its `.grad`, then zero the gradients."""
        cfg, m, v = self.cfg, self.m, self.v
        lr_t = cfg.lr_at(step, num_steps)
        bias1, bias2 = cfg.bias_corrections(step)
        for i, p in enumerate(self.params):
            m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * p.grad
            v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * p.grad**2
            m_hat = m[i] / bias1
            v_hat = v[i] / bias2
            p.data -= lr_t * m_hat / (v_hat**0.5 + cfg.eps)
            p.grad = 0


def adam_on_floats(params, grads, m, v, cfg, step, num_steps):
    """`Adam.step` over flat lists of floats: (params, m, v) after one update, as new lists.

    Formula for formula the same update, as three list comprehensions over zipped
    lists instead of one loop that indexes all four: no index arithmetic per number.
    Chapter 12's breakdown shows what the optimizer costs per step.
    """
    b1, b2, eps = cfg.beta1, cfg.beta2, cfg.eps
    c1, c2 = 1 - b1, 1 - b2
    lr_t = cfg.lr_at(step, num_steps)
    bc1, bc2 = cfg.bias_corrections(step)
    m = [b1 * mi + c1 * g for mi, g in zip(m, grads)]
    v = [b2 * vi + c2 * (g * g) for vi, g in zip(v, grads)]
    # sqrt is faster than ** 0.5 (a pow call) and equal to rounding
    params = [p - lr_t * (mi / bc1) / (sqrt(vi / bc2) + eps) for p, mi, vi in zip(params, m, v)]
    return params, m, v
