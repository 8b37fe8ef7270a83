"""Stage `fused`: one graph node per dot product instead of two per multiply-add.

A matrix-vector product over 16 inputs used to build 16 multiply nodes, 16 add
nodes and a constant for every output; now it builds one `Dot` node whose forward
is `sum(map(mul, ...))` on floats (a C loop) and whose backward is one Python loop
over the pairs. The attention's weighted sum of values gets the same treatment
(`WeightedSum`), and the attention score's division by sqrt(head_dim) is folded
into its `Dot`. The graph shrinks by an order of magnitude (chapter 09 counts it),
so building it, sorting it and walking it back all get cheaper. What is left is
the multiply-adds themselves (the forward's `sum(map(mul, ...))` and the backward's
loops over pairs, a Python-level `+=` per weight per position), the walk, and
Adam's loop over every parameter.
"""

from operator import mul

from ..model import rmsnorm, softmax
from . import numeric_ce
from .graph import Node, recycle, topological_order


class Dot(Node):
    """`scale * sum(a[i] * b[i])` as one node; its gradient flows to both vectors."""

    __slots__ = ("a", "b", "a_data", "b_data", "scale")

    def __init__(self, a, b, a_data, b_data, children, scale=1.0):
        self.data = sum(map(mul, a_data, b_data)) * scale
        self.grad = 0
        self._children = children  # only the inner nodes: the walk skips leaves anyway
        self._local_grads = None  # marks a fused node: `propagate` does the backward
        self._mark = 0
        self.a, self.b, self.a_data, self.b_data, self.scale = a, b, a_data, b_data, scale

    def propagate(self):
        grad = self.grad * self.scale
        for node, other in zip(self.a, self.b_data):
            node.grad += other * grad
        for node, other in zip(self.b, self.a_data):
            node.grad += other * grad


class WeightedSum(Dot):
    """`sum(weights[t] * vectors[t][j])`: one output of attention, as one node."""

    __slots__ = ()


def backward(topo):
    """Chain rule over `topo` in reverse; fused nodes run their own loop.

    A node whose gradient is exactly zero is skipped: it would only add zeros. That
    is true of the first MLP layer's rows whose ReLU is off at a position, and their
    `Dot` loops are among the longest in the model (chapter 09 measures the skip).
    """
    for node in reversed(topo):
        grad = node.grad
        if not grad:
            continue
        local_grads = node._local_grads
        if local_grads is None:
            node.propagate()
        else:
            for child, local_grad in zip(node._children, local_grads):
                child.grad += local_grad * grad


def linear(x, w, w_data):
    """One `Dot` node per row of `w`; `w_data` holds the rows' floats.

    Only the first row lists `x` as its children; the other rows list the first row.
    The walk then looks at `x` once, not once per row, and the order stays right:
    every row still comes after `x`, so all of them pass back before `x` does.
    """
    x_data = [xi.data for xi in x]
    first = Dot(w[0], x, w_data[0], x_data, x)
    via_first = (first,)
    rows = zip(w[1:], w_data[1:])
    return [first] + [Dot(row, x, row_data, x_data, via_first) for row, row_data in rows]


class Model(numeric_ce.Model):
    """`numeric_ce`, with dot products and attention sums fused into single nodes."""

    memory_kind = "nodes"  # a node per output, not per multiply-add

    rmsnorm = staticmethod(rmsnorm)  # the next stage fuses it

    def weight_data(self, matrix):
        """The floats of a weight matrix, read once per step (the weights change in Adam)."""
        cache = self.step_cache
        key = id(matrix)
        if key not in cache:
            cache[key] = [[p.data for p in row] for row in matrix]
        return cache[key]

    def forward(self, token_id, pos_id, keys, values):
        """Logits for the token after `token_id`; appends this position's k, v to the cache."""
        wd = self.weight_data
        x = [t + p for t, p in zip(self.wte[token_id], self.wpe[pos_id])]
        x = self.rmsnorm(x)
        for layer, layer_keys, layer_values in zip(self.layers, keys, values):
            x_residual = x
            x = self.rmsnorm(x)
            q = linear(x, layer.attn_wq, wd(layer.attn_wq))
            layer_keys.append(linear(x, layer.attn_wk, wd(layer.attn_wk)))
            layer_values.append(linear(x, layer.attn_wv, wd(layer.attn_wv)))
            x_attn = self.attention(q, layer_keys, layer_values)
            x = linear(x_attn, layer.attn_wo, wd(layer.attn_wo))
            x = [a + b for a, b in zip(x, x_residual)]
            x_residual = x
            x = self.rmsnorm(x)
            x = [xi.relu() for xi in linear(x, layer.mlp_fc1, wd(layer.mlp_fc1))]
            x = linear(x, layer.mlp_fc2, wd(layer.mlp_fc2))
            x = [a + b for a, b in zip(x, x_residual)]
        return linear(x, self.lm_head, wd(self.lm_head))

    def attention(self, q, layer_keys, layer_values):
        """The attention's output at this position: all heads, side by side."""
        head_dim = self.cfg.head_dim
        return [
            out
            for hs in range(0, self.cfg.n_embd, head_dim)
            for out in self.attention_head(q, layer_keys, layer_values, hs)
        ]

    def attention_head(self, q, layer_keys, layer_values, hs):
        """One head's output: a `WeightedSum` of the cached values per dimension."""
        head_dim, inv_scale = self.cfg.head_dim, self.inv_attn_scale
        q_h = q[hs : hs + head_dim]
        q_data = [qi.data for qi in q_h]
        attn_logits = []
        for k in layer_keys:
            k_h = k[hs : hs + head_dim]
            k_data = [ki.data for ki in k_h]
            attn_logits.append(Dot(q_h, k_h, q_data, k_data, q_h + k_h, inv_scale))
        attn_weights = softmax(attn_logits)
        a_data = [a.data for a in attn_weights]
        head_out = []
        for j in range(hs, hs + head_dim):
            v_j = [v[j] for v in layer_values]
            v_data = [vj.data for vj in v_j]
            head_out.append(WeightedSum(attn_weights, v_j, a_data, v_data, attn_weights + v_j))
        return head_out

    def logits_per_position(self, tokens):
        self.step_cache = {}
        return super().logits_per_position(tokens)

    def backward(self, roots):
        topo = topological_order(roots)
        backward(topo)
        self.release(topo)

    def release(self, topo):
        """Only plain `Node`s are recycled: `new_node` never makes a fused one."""
        if self.recycles:
            recycle([node for node in topo if node._local_grads is not None])


__all__ = ["Dot", "Model", "WeightedSum", "backward", "linear"]
