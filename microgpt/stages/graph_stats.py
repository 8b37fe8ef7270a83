"""How big is the graph? Nodes built for one training sequence, for any stage.

Stages with their own node classes answer through their `count_graph_nodes`
method; the baseline's `Value` graph is counted by walking it from the loss.
"""

from ..engine import topological_order


def count_graph_nodes(model, tokens):
    """Nodes reachable from the loss of `tokens` (weights are left untouched)."""
    counter = getattr(model, "count_graph_nodes", None)
    if counter is not None:
        return counter(tokens)
    return len(topological_order(model.loss(tokens)))
