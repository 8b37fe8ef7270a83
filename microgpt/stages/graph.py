"""Stage `graph`: a cheaper walk over the graph, and the graph freed as soon as it is used.

The baseline sorts the graph with a `visited` set: every node is hashed and
inserted, and every (node, flag) pair on the stack is a fresh tuple. Here each
`Node` carries an integer mark compared with the current traversal's epoch, so
"seen?" is one attribute read, and a node waits on the stack as itself. Leaves
(parameters and constants) are never pushed: they have nothing to propagate, and
they still receive their gradients from their parents. The graph of one name has
tens of thousands of nodes, most of them inner nodes that the walk visits (chapter
05 counts them).

Releasing the graph: CPython frees a node the moment its last reference goes, and
the graph has no cycles, so it is released when `train_step` returns anyway.

Node pooling: after the backward pass the step's inner nodes are unlinked and kept
on a free list, and the next step's ops refill them instead of allocating. The
mechanism is two functions: every op allocates through `new_node`, and a model hands
its spent graph back through its `release` hook, which later stages may override;
a model whose `recycles` is False keeps nothing (the `gc` stage's choice). The pool
belongs to this module: `empty_pool` lets every spare node go, as a fresh process
starts, and `pool_size` says how many wait. One would expect no gain, since
CPython's small-object allocator is fast. The cost it saves is the cyclic garbage
collector's: in CPython 3.11 a young collection starts after every 700 new
container objects, and a recycled node is not a new object (chapter 11 tells the
collector's story). Chapter 07 measures pooling with the collector on and off.
"""

import itertools
import math

from ..engine import Value
from . import numeric_inference

_epochs = itertools.count(1)


class Node(Value):
    """A `Value` that remembers in which traversal it was last seen."""

    __slots__ = ("_mark",)

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0
        self._children = children
        self._local_grads = local_grads
        self._mark = 0  # 2 * epoch: entered in that traversal; 2 * epoch + 1: done

    # The baseline's ops, returning `Node`s; the derived ops (-, /, ...) are inherited.
    def __add__(self, other):
        other = other if isinstance(other, Value) else new_node(other)
        return new_node(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else new_node(other)
        return new_node(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, other):
        return new_node(self.data**other, (self,), (other * self.data ** (other - 1),))

    def log(self):
        return new_node(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        return new_node(math.exp(self.data), (self,), (math.exp(self.data),))

    def relu(self):
        return new_node(max(0, self.data), (self,), (float(self.data > 0),))

    def backward(self):
        """Fill in `.grad` of every node this one depends on."""
        self.grad = 1
        backward(topological_order([self]))


free_nodes = []  # inner nodes handed back by `recycle`, refilled by `new_node`


def new_node(data, children=(), local_grads=()):
    """A `Node` for an op's result: a recycled one while any is free, else a new one."""
    if free_nodes:
        node = free_nodes.pop()
        node.data = data
        node.grad = 0
        node._children = children
        node._local_grads = local_grads
        return node
    return Node(data, children, local_grads)


def recycle(nodes):
    """Unlink spent `nodes` (so what they point to can be freed) and keep them for reuse."""
    for node in nodes:
        node._children = node._local_grads = ()
    free_nodes.extend(nodes)


def empty_pool():
    """Let every spare node go: the next model starts with none, as in a fresh process."""
    free_nodes.clear()


def pool_size():
    """How many spare nodes wait for reuse."""
    return len(free_nodes)


def topological_order(roots):
    """Inner nodes reachable from `roots`, children before parents; leaves are skipped."""
    entered = 2 * next(_epochs)
    topo = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        mark = node._mark
        if mark < entered:  # first visit: come back after the children
            node._mark = entered
            stack.append(node)
            stack.extend([c for c in node._children if c._children and c._mark < entered])
        elif mark == entered:  # children done (a DAG cannot reach a node from itself)
            node._mark = entered + 1
            topo.append(node)
    return topo


def backward(topo):
    """Chain rule over `topo` in reverse: each node passes its gradient to its children."""
    for node in reversed(topo):
        grad = node.grad
        for child, local_grad in zip(node._children, node._local_grads):
            child.grad += local_grad * grad


class Model(numeric_inference.Model):
    """`numeric_inference` on pooled `Node`s, sorted by marks."""

    node_class = Node
    recycles = True  # False: spent nodes are let go, not kept for the next step

    def train_step(self, tokens, step, num_steps):
        """Forward, backward and one Adam update; returns the loss as a float."""
        loss = self.loss(tokens)
        loss.grad = 1
        topo = topological_order([loss])
        backward(topo)
        self.release(topo)
        self.optimizer.step(step, num_steps)
        return loss.data

    def release(self, topo):
        """Hand the step's spent inner nodes back for the next step's ops to reuse."""
        if self.recycles:
            recycle(topo)


__all__ = [
    "Model",
    "Node",
    "backward",
    "empty_pool",
    "new_node",
    "pool_size",
    "recycle",
    "topological_order",
]
