"""Stage `tape`: each op is recorded as it runs; backward replays the record in reverse.

Every stage so far finds the order of the backward pass by walking the graph back
from the loss, each step: a topological sort over thousands of nodes. But the
forward pass has already run the ops in an order where each input exists before it
is used, so that order reversed is a valid backward order. Here each op appends
itself to the model's tape when it runs, and backward calls the ops' `propagate`
newest first: no sort, no marks, no stack. PyTorch's autograd records the same way
(each op, as it runs, creates its backward node, `grad_fn`, linked to its inputs'),
and TensorFlow's `GradientTape` is a tape replayed in reverse, like this one.

An op here is what PyTorch's ops are: a whole vector operation with its own
derivative, so a matrix-vector product is one `Linear` op (not `gc`'s one `Dot`
node per row), one position's attention over all heads is one `Attention` op. The
ops' outputs are still graph nodes, `Node`s that hold a value and collect the
gradient from every op that read them; the ops link them to their inputs.

The parameters live in one flat list of floats, as in the graph-free stages: each
step every matrix reads its rows (and columns) from it, the `Linear` ops leave their
(dy, x) pairs with the matrix, and each matrix sums its gradient once, at the end.
Adam runs over the flat lists, not over one `Value` per parameter.
"""

from itertools import chain, repeat
from operator import mul

from ..config import AdamConfig
from ..optim import adam_on_floats
from . import gc_pause
from ._graph_free import GraphFreeModel
from ._list_kernels import (
    column_sums,
    dot_groups,
    outer_sum,
    repeat_each,
    rmsnorm,
    rmsnorm_backward,
    softmax_columns,
)


class Node:
    """One number an op computed: its value, and its gradient once backward reaches it."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = data
        self.grad = 0


def nodes(values):
    return [Node(v) for v in values]


def backward(tape):
    """Each op, newest first, passes its outputs' gradients to its inputs."""
    for op in reversed(tape):
        op.propagate()


def add_grads(nodes, grads):
    for node, g in zip(nodes, grads):
        node.grad += g


def combine(vectors, coefficients):
    """`sum(c * v)` over the pairs, skipping zero coefficients: `W @ x` from W's columns.

    After a ReLU most of fc2's inputs are exactly zero, and so are most gradients
    coming back into fc1's outputs: a skipped term would only add zero.
    """
    terms = [map(mul, v, repeat(c)) for v, c in zip(vectors, coefficients) if c]
    if not terms:
        return [0.0] * len(vectors[0])
    return list(map(sum, zip(*terms)))


class Matrix:
    """A weight matrix inside the flat parameter list, with this step's gradient of it."""

    def __init__(self, start, rows, cols):
        self.start, self.num_rows, self.num_cols = start, rows, cols

    def load(self, params):
        """This step's rows and columns as floats; the gradient starts at zero."""
        start, cols = self.start, self.num_cols
        stop = start + self.num_rows * cols
        self.rows = [params[i : i + cols] for i in range(start, stop, cols)]
        self.cols = list(zip(*self.rows))
        self.pairs = []  # (dy, x) of every y = W x this step: the gradient is their outer sum
        self.row_grads = []  # (row, dy) of every lookup of a row (the embeddings)

    def gradient(self):
        """This step's gradient, row-major like the parameters.

        Row r is the sum over products of dy[r] * x, so `combine` skips the zero dy[r]
        (fc1's dead units); fc2's zeros are in x, so its gradient is summed column by column.
        """
        rows, cols = self.num_rows, self.num_cols
        grad = outer_sum(self.pairs, rows, cols) if self.pairs else [0.0] * (rows * cols)
        for r, dy in self.row_grads:
            s = r * cols
            grad[s : s + cols] = [a + b for a, b in zip(grad[s : s + cols], dy)]
        return grad


class Embedding:
    """`wte[token] + wpe[pos]`: the nodes the forward pass starts from."""

    def __init__(self, wte, wpe, token_id, pos_id):
        self.wte, self.wpe, self.token_id, self.pos_id = wte, wpe, token_id, pos_id
        self.out = nodes(map(sum, zip(wte.rows[token_id], wpe.rows[pos_id])))

    def propagate(self):
        dy = [y.grad for y in self.out]
        self.wte.row_grads.append((self.token_id, dy))
        self.wpe.row_grads.append((self.pos_id, dy))


class Linear:
    """`y = W x` as one op: a node per row of W, one backward for all rows."""

    def __init__(self, x, w):
        self.x, self.w = x, w
        self.x_data = x_data = [xi.data for xi in x]
        self.out = nodes(combine(w.cols, x_data))

    def propagate(self):
        dy = [y.grad for y in self.out]
        add_grads(self.x, combine(self.w.rows, dy))
        self.w.pairs.append((dy, self.x_data))


class RMSNorm:
    """`x / rms(x)` as one op, with its analytic gradient."""

    def __init__(self, x):
        self.x = x
        self.x_data = [xi.data for xi in x]
        self.inv_n = len(x) ** -1
        y, self.scale = rmsnorm(self.x_data, self.inv_n)
        self.out = nodes(y)

    def propagate(self):
        dy = [y.grad for y in self.out]
        add_grads(self.x, rmsnorm_backward(dy, self.x_data, self.scale, self.inv_n))


class ReLU:
    def __init__(self, x):
        self.x = x
        self.out = [Node(max(0, xi.data)) for xi in x]

    def propagate(self):
        for xi, y in zip(self.x, self.out):
            if y.data > 0:
                xi.grad += y.grad


class Add:
    def __init__(self, a, b):
        self.a, self.b = a, b
        self.out = [Node(ai.data + bi.data) for ai, bi in zip(a, b)]

    def propagate(self):
        for ai, bi, y in zip(self.a, self.b, self.out):
            g = y.grad
            ai.grad += g
            bi.grad += g


class Attention:
    """Causal self-attention of one position, every head, as one op."""

    def __init__(self, q, keys, values, n_head, inv_scale):
        self.q, self.n_head, self.inv_scale = q, n_head, inv_scale
        self.k = list(chain.from_iterable(keys))  # position-major: (seen, n_embd)
        self.v = list(chain.from_iterable(values))
        self.seen = seen = len(keys)
        self.head_dim = d = len(q) // n_head
        self.q_data = [qi.data for qi in q]
        self.k_data = [ki.data for ki in self.k]
        self.v_data = [vi.data for vi in self.v]
        scores = dot_groups(self.k_data, self.q_data * seen, d)  # (seen, n_head)
        self.attn = softmax_columns([s * inv_scale for s in scores], n_head)
        out = column_sums(map(mul, self.v_data, repeat_each(self.attn, d)), len(q))
        self.out = nodes(out)

    def propagate(self):
        attn, seen, d = self.attn, self.seen, self.head_dim
        dout = [y.grad for y in self.out]
        dattn = dot_groups(self.v_data, dout * seen, d)
        dot = column_sums(map(mul, attn, dattn), self.n_head)
        inv_scale = self.inv_scale
        dscores = [w * (g - c) * inv_scale for w, g, c in zip(attn, dattn, dot * seen)]
        add_grads(self.q, column_sums(map(mul, self.k_data, repeat_each(dscores, d)), len(dout)))
        add_grads(self.k, map(mul, repeat_each(dscores, d), self.q_data * seen))
        add_grads(self.v, map(mul, repeat_each(attn, d), dout * seen))


class FlatAdam:
    """Adam over a model's flat lists, with the `step` the graph stages call on theirs."""

    def __init__(self, model):
        self.model = model

    def step(self, step, num_steps):
        model = self.model
        model.params, model.m, model.v = adam_on_floats(
            model.params, model.grads, model.m, model.v, model.adam, step, num_steps
        )


class Model(gc_pause.Model):
    """`gc` with its ops recorded on a tape and its parameters in one flat list."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig()):
        GraphFreeModel.__init__(self, cfg, vocab_size, adam)  # sizes, Adam's, the flat layout
        self.params = self.layout.flatten(weights)
        self.m = [0.0] * len(self.params)  # Adam's running mean of gradients
        self.v = [0.0] * len(self.params)  # Adam's running mean of squared gradients
        self.matrices = [
            Matrix(self.layout.offsets[name], rows, cols) for name, rows, cols in self.layout.shapes
        ]
        self.set_weights(dict(zip(self.layout.offsets, self.matrices)))
        self.tape = []  # the ops of the step being run, in the order they ran
        self.optimizer = FlatAdam(self)

    def weights(self):
        return self.layout.unflatten(self.params)

    def record(self, op):
        """Put `op` on the tape; its output nodes."""
        self.tape.append(op)
        return op.out

    def logits_per_position(self, tokens):
        self.tape.clear()
        for matrix in self.matrices:
            matrix.load(self.params)
        return super().logits_per_position(tokens)

    def forward(self, token_id, pos_id, keys, values):
        """Logits for the token after `token_id`; appends this position's k, v to the cache."""
        record = self.record
        x = record(Embedding(self.wte, self.wpe, token_id, pos_id))
        x = record(RMSNorm(x))
        for layer, layer_keys, layer_values in zip(self.layers, keys, values):
            x_residual = x
            x = record(RMSNorm(x))
            q = record(Linear(x, layer.attn_wq))
            layer_keys.append(record(Linear(x, layer.attn_wk)))
            layer_values.append(record(Linear(x, layer.attn_wv)))
            x = record(Attention(q, layer_keys, layer_values, self.cfg.n_head, self.inv_attn_scale))
            x = record(Linear(x, layer.attn_wo))
            x = record(Add(x, x_residual))
            x_residual = x
            x = record(RMSNorm(x))
            x = record(ReLU(record(Linear(x, layer.mlp_fc1))))
            x = record(Linear(x, layer.mlp_fc2))
            x = record(Add(x, x_residual))
        return record(Linear(x, self.lm_head))

    def loss_and_grad(self, tokens):
        """(loss, gradient flat like `params`) of `tokens`, with no update."""
        return self.forward_backward(tokens), self.grads

    def backward(self, roots):
        """The tape in reverse from the gradients set on `roots`; then each matrix's sum."""
        backward(self.tape)
        self.tape.clear()
        self.grads = list(chain.from_iterable(m.gradient() for m in self.matrices))


__all__ = ["Model", "Node", "backward"]
