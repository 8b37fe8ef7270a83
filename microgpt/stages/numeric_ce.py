"""Stage `numeric_ce`: the loss head is computed on floats, outside the graph.

Softmax and cross-entropy have a simple gradient with respect to the logits:
`(probs - onehot(target)) / n` for the mean over `n` positions. So instead of
building exp, sum, reciprocal, multiply, log and mean nodes (several per vocabulary
entry) for every position, the softmax runs on the logits' floats, that gradient is
written straight into the logit nodes, and the backward pass starts from all of them
at once. The loss itself is a float.
"""

import math

from ..numeric import softmax
from . import graph


def cross_entropy(all_logits, tokens):
    """Mean cross-entropy of the next tokens; sets each logit's gradient by hand."""
    inv_n = 1 / len(all_logits)
    total = 0.0
    for logits, target_id in zip(all_logits, tokens[1:]):
        probs = softmax([logit.data for logit in logits])
        total += -math.log(probs[target_id])
        for logit, p in zip(logits, probs):
            logit.grad = p * inv_n
        logits[target_id].grad -= inv_n
    return total * inv_n


class Model(graph.Model):
    """`graph`, with softmax + cross-entropy done by hand on floats."""

    def logits_per_position(self, tokens):
        """The logit nodes of every position of `tokens` (the graph's roots)."""
        keys, values = self.empty_cache()
        positions = range(self.cfg.positions(len(tokens)))
        return [self.forward(tokens[pos_id], pos_id, keys, values) for pos_id in positions]

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        loss = self.forward_backward(tokens)
        self.optimizer.step(step, num_steps)
        return loss

    def forward_backward(self, tokens):
        """The loss of `tokens` as a float, with every parameter's gradient filled in."""
        all_logits = self.logits_per_position(tokens)
        loss = cross_entropy(all_logits, tokens)
        self.backward([logit for logits in all_logits for logit in logits])
        return loss

    def backward(self, roots):
        """Propagate the gradients already set on `roots`, then release the graph."""
        topo = graph.topological_order(roots)
        graph.backward(topo)
        self.release(topo)


__all__ = ["Model", "cross_entropy"]
