"""Stage `fused_norm`: RMSNorm's scale becomes one node with its analytic gradient.

`rmsnorm(x)` built a multiply and an add per square (and the sum's starting 0), the
mean's multiply, the epsilon's add (each with its constant), a power, and one
product per output. The outputs are `x_i * s` with `s = (mean(x^2) + eps) ** -0.5`,
and `s` has a closed-form gradient, `ds/dx_j = -s**3 * x_j / n`, so here `s` is one
`RMSScale` node whose backward is a single loop over `x`; only the output products
stay, three RMSNorms per position (chapter 10 counts the nodes). Reusing scratch
buffers across steps (the weights' floats that the `Dot` nodes read, refreshed in
place after each Adam update) was tried as well and did not pay for its extra code,
so this stage keeps the simpler fresh lists.
"""

from operator import mul

from . import fused
from .graph import Node, new_node

EPS = 1e-5  # as in `microgpt.model.rmsnorm`


class RMSScale(Node):
    """`(mean(x**2) + eps) ** -0.5` as one node."""

    __slots__ = ("x", "x_data")

    def __init__(self, x, x_data):
        mean_square = sum(map(mul, x_data, x_data)) * len(x_data) ** -1
        self.data = (mean_square + EPS) ** -0.5
        self.grad = 0
        self._children = x
        self._local_grads = None  # a fused node: `propagate` does the backward
        self._mark = 0
        self.x, self.x_data = x, x_data

    def propagate(self):
        factor = -(self.data**3) * len(self.x_data) ** -1 * self.grad
        for node, x in zip(self.x, self.x_data):
            node.grad += factor * x


def rmsnorm(x):
    """`x * s` per element: ordinary product nodes over one `RMSScale` node."""
    x_data = [xi.data for xi in x]
    scale = RMSScale(x, x_data)
    s = scale.data
    return [new_node(xd * s, (xi, scale), (s, xd)) for xi, xd in zip(x, x_data)]


class Model(fused.Model):
    """`fused`, with a fused RMSNorm."""

    rmsnorm = staticmethod(rmsnorm)


__all__ = ["Model", "RMSScale", "rmsnorm"]
