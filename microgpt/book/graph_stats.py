"""How big is the graph? Nodes built for one training sequence, for any stage.

Counts every node reachable from the graph's roots, leaves included: from the
loss for the stages that build it as a node, from the logits for the stages that
compute the loss head on floats (`logits_per_position`). `count_graph_parts`
splits the count into inner nodes (made by an op) and leaves (weights, constants),
so that stages whose weights are not nodes compare fairly.
"""


def reachable(roots):
    """Every node reachable from `roots`, leaves included, each once."""
    seen = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(node._children)
    return seen.values()


def count_reachable(roots):
    """Every node reachable from `roots`, leaves included."""
    return len(reachable(roots))


def graph_roots(model, tokens):
    """The nodes the backward pass of `tokens` starts from (weights are left untouched)."""
    if hasattr(model, "logits_per_position"):
        return [logit for logits in model.logits_per_position(tokens) for logit in logits]
    return [model.loss(tokens)]


def count_graph_nodes(model, tokens):
    """Nodes reachable from the roots of the graph of `tokens`.

    The `tape` stage's nodes are its ops' outputs, and its weights are floats, not
    nodes: it counts what its tape holds.
    """
    roots = graph_roots(model, tokens)
    if hasattr(model, "tape"):
        return sum(len(op.out) for op in model.tape)
    return count_reachable(roots)


def count_graph_parts(model, tokens):
    """(inner nodes, leaves) of the graph of `tokens`: an inner node has children (an op
    made it), a leaf has none (a weight or a constant). The `tape` stage has no leaf
    nodes: its weights are floats, and its nodes are its ops' outputs."""
    roots = graph_roots(model, tokens)
    if hasattr(model, "tape"):
        return sum(len(op.out) for op in model.tape), 0
    nodes = reachable(roots)
    inner = sum(1 for node in nodes if node._children)
    return inner, len(nodes) - inner
