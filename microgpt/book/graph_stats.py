"""How big is the graph? Nodes built for one training sequence, for any stage.

Counts every node reachable from the graph's roots, leaves included: from the
loss for the stages that build it as a node, from the logits for the stages that
compute the loss head on floats (`logits_per_position`).
"""


def count_reachable(roots):
    """Every node reachable from `roots`, leaves included."""
    seen = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node._children)
    return len(seen)


def graph_roots(model, tokens):
    """The nodes the backward pass of `tokens` starts from (weights are left untouched)."""
    if hasattr(model, "logits_per_position"):
        return [logit for logits in model.logits_per_position(tokens) for logit in logits]
    return [model.loss(tokens)]


def count_graph_nodes(model, tokens):
    """Nodes reachable from the roots of the graph of `tokens`."""
    return count_reachable(graph_roots(model, tokens))
