"""How big is the graph? Nodes built for one training sequence, for any stage.

Counts every node reachable from the graph's roots, leaves included: from the
loss for the stages that build it as a node, from the logits for the stages that
compute the loss head on floats (`logits_per_position`). `count_graph_parts`
splits the count into inner nodes (made by an op) and leaves (weights, constants),
so that stages whose weights are not nodes compare fairly. The graph-free stages
(`flat`, `tensor`, `jit`) build no graph: they are refused, saying so.
"""

from ..arguments import ArgumentError, checked, sequence, shown
from .checks import graph_model, token_ids


def _graph_nodes(value, label):
    """Graph nodes to start from: a list of objects with `_children` (`Value`s, `Node`s)."""
    roots = sequence(value, label, "graph nodes (Values)")
    for root in roots:
        if not hasattr(root, "_children"):
            raise ArgumentError(f"{label} must hold graph nodes (Values), not {shown(root)}")
    return roots


def _sequence_for(model, tokens, label):
    """`tokens` checked for `model`: ids of its vocabulary, at least two (a target)."""
    return token_ids(tokens, label, model.vocab_size, least=2)


@checked(roots=_graph_nodes)
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


@checked(roots=_graph_nodes)
def count_reachable(roots):
    """Every node reachable from `roots`, leaves included."""
    return len(reachable(roots))


@checked(model=graph_model)
def graph_roots(model, tokens):
    """The nodes the backward pass of `tokens` starts from (weights are left untouched)."""
    tokens = _sequence_for(model, tokens, "graph_roots: tokens")
    if hasattr(model, "logits_per_position"):
        return [logit for logits in model.logits_per_position(tokens) for logit in logits]
    return [model.loss(tokens)]


@checked(model=graph_model)
def count_graph_nodes(model, tokens):
    """Nodes reachable from the roots of the graph of `tokens`, for any stage that builds
    a graph (`baseline` to `tape`).

    The `tape` stage's nodes are its ops' outputs, and its weights are floats, not
    nodes: it counts what its tape holds.
    """
    roots = graph_roots(model, tokens)
    if hasattr(model, "tape"):
        return sum(len(op.out) for op in model.tape)
    return count_reachable(roots)


@checked(model=graph_model)
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
