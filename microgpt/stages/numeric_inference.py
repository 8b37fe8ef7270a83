"""Stage `numeric_inference`: sampling runs on plain floats, with no graph.

Sampling needs no gradient, yet the earlier stages build a full autograd graph
for every sampled token and throw it away. Here `sampler` copies the weights to
floats once per name and runs `FloatGPT`: `cleanup`'s forward pass itself, with
its four ops (linear, rmsnorm, softmax, relu) swapped for their float twins in
`microgpt.numeric`, so the probabilities (and the names drawn with them) are the
same. Training is unchanged; the benchmark's sampling column shows the gain.
"""

from .. import numeric
from . import cleanup


class FloatGPT:
    """Forward passes on float copies of a model's weights: `cleanup`'s, op for op."""

    linear = staticmethod(numeric.linear)
    rmsnorm = staticmethod(numeric.rmsnorm)
    softmax = staticmethod(numeric.softmax)
    relu = staticmethod(numeric.relu)
    set_weights = cleanup.Model.set_weights
    forward = cleanup.Model.forward

    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.set_weights(weights)

    def empty_cache(self):
        return [[] for _ in range(self.cfg.n_layer)], [[] for _ in range(self.cfg.n_layer)]

    def sampler(self, temperature):
        """`next_probs(token_id, pos_id)` on floats, as `GPT.sampler` on `Value`s."""
        keys, values = self.empty_cache()
        inv_temperature = temperature**-1

        def next_probs(token_id, pos_id):
            logits = self.forward(token_id, pos_id, keys, values)
            return self.softmax([logit * inv_temperature for logit in logits])

        return next_probs


class Model(cleanup.Model):
    """`cleanup`, sampling on floats."""

    def sampler(self, temperature):
        return FloatGPT(self.cfg, self.weights()).sampler(temperature)


__all__ = ["FloatGPT", "Model"]
