"""A scalar autograd engine: every number remembers how it was made.

Each op returns a new `Value` holding its result, its children, and the local
derivative of the result with respect to each child. `backward()` walks the graph
in reverse topological order and applies the chain rule. This is micrograd as
simplified in microgpt: ops only state their local gradients.
"""

import math


class Value:
    """One scalar in the computation graph, with its gradient."""

    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data  # the number computed in the forward pass
        self.grad = 0  # d(loss)/d(self), filled in by backward()
        self._children = children  # the Values this one was computed from
        self._local_grads = local_grads  # d(self)/d(child), one per child

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, other):
        return Value(self.data**other, (self,), (other * self.data ** (other - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        return Value(math.exp(self.data), (self,), (math.exp(self.data),))

    def relu(self):
        return Value(max(0, self.data), (self,), (float(self.data > 0),))

    # Derived ops are built from the ones above: short, but each adds graph nodes.
    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other**-1

    def __rtruediv__(self, other):
        return other * self**-1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    def backward(self):
        """Fill in `.grad` of every node this one depends on."""
        topo = topological_order(self)
        self.grad = 1
        for v in reversed(topo):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad


def topological_order(root):
    """Children before parents, in the order a recursive depth-first search gives.

    Iterative, with an explicit stack, so a graph deeper than Python's recursion
    limit (a chain of 100,000 nodes) still works.
    """
    topo, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            topo.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node._children))
    return topo
