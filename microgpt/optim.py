"""Adam, the optimizer microgpt uses, on `Value` parameters."""

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
