"""Checkers for the exercises of the optimization chapters (06-16) of the book.

Each `check_*` calls the reader's function on small cases with known answers and
returns a `microgpt.book.exercises.Check`: true when every case passes, shown as
one line saying what is right, or the first thing that is wrong, on which input,
and how to fix it. Written with the `@checker` and `Wrong` of that module. Pure
standard library, so the checks also run in the browser.
"""

import gc
import math
import random
import reprlib

from .. import numeric
from ..engine import Value
from ..evaluate import split
from ..stages import flat, tape
from ..stages.graph import Node
from .exercises import Wrong, call, checker

TOLERANCE = 1e-9


def _call(fn, *args):
    """`call`, with a hint for the recursion limit: these chapters walk deep graphs."""
    try:
        return call(fn, *args)
    except Wrong as e:
        if isinstance(e.__cause__, RecursionError):
            name = getattr(fn, "__name__", "your function")
            raise Wrong(
                f"{name} hit Python's recursion limit: walk the graph with an explicit stack"
            ) from e
        raise


def _short(value):
    return reprlib.repr(value)


def _max_diff(xs, ys):
    """Largest |x - y|; infinite when `xs` is not a list of numbers as long as `ys`."""
    try:
        if len(xs) != len(ys):
            return math.inf
        return max((abs(x - y) for x, y in zip(xs, ys)), default=0.0)
    except TypeError:
        return math.inf


def _check_vector(what, got, expected, tol=TOLERANCE):
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        raise Wrong(f"{what} should be a list of {len(expected)} numbers, got {_short(got)}")
    diff = _max_diff(got, expected)
    if not diff <= tol:  # `not <=` also catches NaN
        raise Wrong(f"{what} is off by up to {diff:.3g}: got {_short(got)}")


# ---------------------------------------------------------------------------------------
# chapter 06: numeric inference


@checker
def check_float_softmax(fn):
    """`fn(logits) -> probs` on plain floats, as sampling needs it."""
    cases = [[1.0, 2.0, 3.0], [0.0], [-2.5, 0.5, 0.5, 4.0], [1000.0, 1001.0, 999.0]]
    for logits in cases:
        before = list(logits)
        probs = _call(fn, logits)
        if logits != before:
            raise Wrong(f"softmax: changed its input {_short(before)}; return a new list instead")
        if isinstance(probs, list) and any(isinstance(p, Value) for p in probs):
            raise Wrong("softmax: returned Values; sampling needs plain floats (use math.exp)")
        _check_vector(f"softmax({before})", probs, numeric.softmax(before))
    return "softmax: matches the reference and survives logits near 1000"


# ---------------------------------------------------------------------------------------
# chapter 07: graph traversal


def _chain(node_class, length):
    """A graph `length` nodes deep, to catch recursive answers (the limit is 1,000)."""
    node = node_class(1.0)
    for _ in range(length):
        node = node.relu()
    return node


def _check_order(order, inner, leaves, what):
    """`order` lists the inner nodes (leaves optional) once each, children first."""
    if not isinstance(order, list):
        raise Wrong(f"topological order: should return a list of nodes, got {type(order).__name__}")
    ids = [id(v) for v in order]
    if len(ids) != len(set(ids)):
        raise Wrong(f"topological order: {what}: a shared node is listed more than once")
    inner_ids = {id(v) for v in inner}
    if set(ids) - {id(v) for v in leaves} != inner_ids:
        missing = len(inner_ids - set(ids))
        raise Wrong(
            f"topological order: {what}: {missing} of the {len(inner)} nodes with children "
            f"are missing (got {len(order)} nodes)"
        )
    position = {node_id: i for i, node_id in enumerate(ids)}
    for v in order:
        for child in v._children:
            if position.get(id(child), -1) > position[id(v)]:
                raise Wrong(f"topological order: {what}: lists {v!r} before its child {child!r}")


@checker
def check_topological_order(fn):
    """`fn(root) -> nodes`: inner nodes once, children first, on `graph.Node`s with a `_mark`."""
    a = Node(2.0)
    b = a * a  # both children are `a`
    c = a + b
    d = b * c
    for what in ("d = (a*a) * (a + a*a)", "the same graph, sorted a second time"):
        _check_order(_call(fn, d), [b, c, d], [a], what)
    # deeper than Python's recursion limit, yet shallow enough for the browser's smaller
    # stack to free the chain afterwards (Pyodide fails near 3,000)
    length = 2_000
    root = _chain(Node, length)
    order = _call(fn, root)
    if not isinstance(order, list) or len(order) not in (length, length + 1):
        raise Wrong(
            f"topological order: a chain of {length} relu() has {length} nodes with children, "
            f"got {len(order) if isinstance(order, list) else order!r}"
        )
    return "topological order: children first, each node once, deep graphs, repeated calls"


# ---------------------------------------------------------------------------------------
# chapter 08: numeric cross-entropy


@checker
def check_cross_entropy(fn):
    """`fn(logits, target) -> (loss, dlogits)`: the loss head on floats and its gradient."""
    rng = random.Random(8)
    cases = [([0.0, 0.0], 1), ([2.0, -1.0, 0.5], 0), ([rng.gauss(0, 2) for _ in range(27)], 26)]
    for logits, target in cases:
        result = _call(fn, list(logits), target)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Wrong(f"cross-entropy: should return (loss, dlogits), got {_short(result)}")
        loss, dlogits = result
        probs = numeric.softmax(logits)
        expected_loss = -math.log(probs[target])
        if not abs(loss - expected_loss) <= TOLERANCE:
            raise Wrong(f"cross-entropy: loss {loss} for target {target}, expected {expected_loss}")
        expected = [p - (i == target) for i, p in enumerate(probs)]
        if _max_diff(dlogits, probs) <= TOLERANCE:
            raise Wrong(
                "cross-entropy: dlogits is probs; subtract 1 at the target (probs - onehot)"
            )
        _check_vector(f"dlogits for target {target}", dlogits, expected)
    return "cross-entropy: loss = -log p[target] and dlogits = probs - onehot"


# ---------------------------------------------------------------------------------------
# chapter 09: fused dot product


@checker
def check_dot_backward(fn):
    """`fn(w, x, grad_out) -> (grad_w, grad_x)` for out = sum(w[i] * x[i])."""
    cases = [([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 1.0), ([0.5, -1.0], [2.0, 3.0], -2.0)]
    for w, x, grad_out in cases:
        result = _call(fn, list(w), list(x), grad_out)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Wrong(f"dot backward: should return (grad_w, grad_x), got {_short(result)}")
        grad_w, grad_x = result
        expected_w = [xi * grad_out for xi in x]
        expected_x = [wi * grad_out for wi in w]
        if _max_diff(grad_w, expected_x) <= TOLERANCE and w != x:
            raise Wrong("dot backward: grad_w and grad_x are swapped: d(out)/d(w[i]) is x[i]")
        _check_vector(f"grad_w for w={w}, x={x}, grad_out={grad_out}", grad_w, expected_w)
        _check_vector(f"grad_x for w={w}, x={x}, grad_out={grad_out}", grad_x, expected_x)
    return "dot backward: grad_w[i] = x[i] * grad_out and grad_x[i] = w[i] * grad_out"


# ---------------------------------------------------------------------------------------
# chapter 10: fused RMSNorm


def _finite_differences(x, grad_out, h=1e-6):
    """d(sum(grad_out * rmsnorm(x)))/dx by central differences."""
    grads = []
    for i in range(len(x)):
        up, down = list(x), list(x)
        up[i] += h
        down[i] -= h
        loss_up = sum(g * y for g, y in zip(grad_out, numeric.rmsnorm(up)))
        loss_down = sum(g * y for g, y in zip(grad_out, numeric.rmsnorm(down)))
        grads.append((loss_up - loss_down) / (2 * h))
    return grads


@checker
def check_rmsnorm_backward(fn):
    """`fn(x, grad_out) -> grad_x` for y = rmsnorm(x), against finite differences too."""
    rng = random.Random(10)
    cases = [([1.0, 2.0], [1.0, 0.0]), ([rng.gauss(0, 1) for _ in range(16)], None)]
    for x, grad_out in cases:
        grad_out = grad_out or [rng.gauss(0, 1) for _ in x]
        grad_x = _call(fn, list(x), list(grad_out))
        inv_n = 1 / len(x)
        _, scale = flat.rmsnorm(x, inv_n)  # the reference: the `flat` stage's own kernels
        if _max_diff(grad_x, [scale * g for g in grad_out]) <= TOLERANCE:
            raise Wrong("rmsnorm backward: the scale is not a constant; it depends on every x[i]")
        _check_vector(
            f"grad_x for x={_short(x)}", grad_x, _finite_differences(x, grad_out), tol=1e-6
        )
        expected = flat.rmsnorm_backward(grad_out, x, scale, inv_n)
        _check_vector(f"grad_x for x={_short(x)}", grad_x, expected)
    return "rmsnorm backward: matches finite differences and the analytic gradient"


# ---------------------------------------------------------------------------------------
# chapter 11: garbage collector


def _in_block(make_context, body):
    """Run `body` inside the reader's context manager; its own failures become `Wrong`."""
    name = getattr(make_context, "__name__", "your function")
    manager = _call(make_context)
    if not (hasattr(manager, "__enter__") and hasattr(manager, "__exit__")):
        raise Wrong(
            f"gc pause: {name}() should return a context manager "
            "(decorate a generator with @contextlib.contextmanager)"
        )
    try:
        with manager:
            body()
    except (Wrong, KeyError):
        raise
    except NotImplementedError:
        raise Wrong(f"{name} is not written yet: fill in its body, rerun") from None
    except Exception as e:
        raise Wrong(f"gc pause: the block of {name}() raised {type(e).__name__}: {e}") from None


def _expect_disabled():
    if gc.isenabled():
        raise Wrong("gc pause: the collector is still enabled inside the block")


def _raise_inside():
    raise KeyError("raised inside the block")


@checker
def check_gc_paused(make_context):
    """`make_context()` -> a context manager that pauses the collector and restores its state."""
    was_enabled = gc.isenabled()
    try:
        for enabled_before in (True, False):
            (gc.enable if enabled_before else gc.disable)()
            _in_block(make_context, _expect_disabled)
            if gc.isenabled() != enabled_before:
                state = "enabled" if enabled_before else "disabled"
                raise Wrong(f"gc pause: the collector was {state} before the block, not after it")
        gc.enable()
        try:
            _in_block(make_context, _raise_inside)
        except KeyError:
            pass
        else:
            raise Wrong("gc pause: an exception raised in the block was swallowed; let it through")
        if not gc.isenabled():
            raise Wrong("gc pause: an exception in the block leaves the collector off; use finally")
    finally:
        (gc.enable if was_enabled else gc.disable)()
    return "gc pause: off inside the block, restored after it, even on an exception"


# ---------------------------------------------------------------------------------------
# chapter 12: a tape


@checker
def check_mul_op(op):
    """`op(a, b)`: an op of the `tape` stage for the elementwise product of two vectors
    of `tape.Node`s, with `.out` and `propagate()`; recorded twice on a tape, replayed."""
    name = getattr(op, "__name__", "your op")
    xs, ys, g = [0.5, -1.5, 2.0], [3.0, 0.25, -1.0], [1.0, -2.0, 0.5]
    x, y = tape.nodes(xs), tape.nodes(ys)
    first = _call(op, x, y)
    out = getattr(first, "out", None)
    if not (isinstance(out, list) and len(out) == len(xs)):
        raise Wrong(f"{name}: self.out should be a list of {len(xs)} tape.Nodes, got {_short(out)}")
    if not all(isinstance(node, tape.Node) for node in out):
        raise Wrong(f"{name}: self.out should hold tape.Nodes (tape.nodes(values) makes them)")
    _check_vector(
        f"{name}(a, b).out values", [node.data for node in out], [a * b for a, b in zip(xs, ys)]
    )
    second = _call(op, out, x)  # x * y * x: x is read by both ops
    for node, gi in zip(second.out, g):
        node.grad = gi
    try:
        tape.backward([first, second])
    except NotImplementedError:
        raise Wrong(f"{name}.propagate is not written yet: fill in its body, rerun") from None
    except Exception as e:
        raise Wrong(f"{name}.propagate raised {type(e).__name__}: {e}") from None
    got_x, got_y = [node.grad for node in x], [node.grad for node in y]
    once = [gi * a * b for gi, a, b in zip(g, xs, ys)]  # x's gradient from one of its two uses
    if _max_diff(got_x, once) <= TOLERANCE:
        raise Wrong(f"{name}.propagate: x is read by two ops; add to .grad (+=), do not set it")
    _check_vector(
        "gradient of x in sum(g * x * y * x)",
        got_x,
        [2 * gi * a * b for gi, a, b in zip(g, xs, ys)],
    )
    _check_vector(
        "gradient of y in sum(g * x * y * x)", got_y, [gi * a * a for gi, a in zip(g, xs)]
    )
    return f"{name}: forward a[i] * b[i]; propagate adds b[i] * g[i] to a and a[i] * g[i] to b"


# ---------------------------------------------------------------------------------------
# chapter 13: flat lists


@checker
def check_linear_backward(fn):
    """`fn(x, w, rows, cols, grad_out) -> (grad_x, grad_w)`, w flat and row-major."""
    rng = random.Random(12)
    for rows, cols in ((2, 3), (5, 4)):
        x = [rng.gauss(0, 1) for _ in range(cols)]
        w = [rng.gauss(0, 1) for _ in range(rows * cols)]
        grad_out = [rng.gauss(0, 1) for _ in range(rows)]
        result = _call(fn, list(x), list(w), rows, cols, list(grad_out))
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Wrong(f"linear backward: should return (grad_x, grad_w), got {_short(result)}")
        grad_x, grad_w = result
        expected_x = [sum(w[r * cols + c] * grad_out[r] for r in range(rows)) for c in range(cols)]
        expected_w = [grad_out[r] * x[c] for r in range(rows) for c in range(cols)]
        shape = f"{rows}x{cols} weights"
        _check_vector(f"grad_x ({shape}; element [r, c] is w[r * cols + c])", grad_x, expected_x)
        _check_vector(f"grad_w ({shape}; flat, row-major like w)", grad_w, expected_w)
    return "linear backward: grad_x = W^T grad_out and grad_w = outer(grad_out, x), flat"


# ---------------------------------------------------------------------------------------
# chapter 14: compiled


@checker
def check_softmax_backward_kernel(fn):
    """`fn(w, dw, out)` writes the softmax backward w * (dw - w . dw) into `out`."""
    rng = random.Random(14)
    cases = [[0.0, 0.0], [1.5, -0.5, 0.25], [rng.gauss(0, 2) for _ in range(7)]]
    for scores in cases:
        w = numeric.softmax(scores)
        dw = [rng.gauss(0, 1) for _ in w]
        out = [0.0] * len(w)
        result = _call(fn, list(w), list(dw), out)
        if result is not None and out == [0.0] * len(w):
            raise Wrong(
                "softmax backward kernel: returned its result; write it into `out` instead "
                "(a compiled kernel fills the arrays it is given and allocates nothing)"
            )
        dot = sum(a * b for a, b in zip(w, dw))
        expected = [a * (b - dot) for a, b in zip(w, dw)]
        if len(w) > 1 and _max_diff(out, [a * b for a, b in zip(w, dw)]) <= TOLERANCE:
            raise Wrong(
                "softmax backward kernel: out is w * dw; subtract w . dw first: every weight "
                "depends on every score through the sum"
            )
        _check_vector(f"out for w={_short(w)}", out, expected)
    return "softmax backward kernel: out = w * (dw - w . dw), written in place"


# ---------------------------------------------------------------------------------------
# chapter 15: results


@checker
def check_speedups(fn):
    """`fn(ms_per_step) -> {name: (vs_baseline, vs_previous)}`; the first stage is the baseline.

    Two sets of timings, so that an answer written for the first one fails the second."""
    for ms in (
        {"baseline": 120.0, "cleanup": 100.0, "fused": 8.0, "flat": 2.0},
        {"baseline": 90.0, "tape": 6.0, "tensor": 0.12},
    ):
        _check_speedups_on(fn, ms)
    return "speed-ups: old time / new time, against the baseline and the previous stage"


def _check_speedups_on(fn, ms):
    result = _call(fn, dict(ms))
    if not isinstance(result, dict) or list(result) != list(ms):
        raise Wrong(f"speed-ups: should return a dict with the keys {list(ms)} in order")
    stage_names = list(ms)
    for i, name in enumerate(stage_names):
        got = result[name]
        expected_base = ms["baseline"] / ms[name]
        expected_prev = None if i == 0 else ms[stage_names[i - 1]] / ms[name]
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Wrong(f"speed-ups: {name}: want (vs_baseline, vs_previous), got {got!r}")
        vs_base, vs_prev = got
        if i > 0 and abs(vs_base - ms[name] / ms["baseline"]) < TOLERANCE:
            raise Wrong(f"speed-ups: {name}: upside down; a faster stage has a speed-up above 1")
        if not abs(vs_base - expected_base) < TOLERANCE:
            raise Wrong(f"speed-ups: {name}: vs_baseline is {vs_base}, expected {expected_base}")
        if expected_prev is None:
            if vs_prev is not None:
                raise Wrong("speed-ups: the first stage has no previous stage: use None")
        elif vs_prev is None or not abs(vs_prev - expected_prev) < TOLERANCE:
            raise Wrong(f"speed-ups: {name}: vs_previous is {vs_prev}, expected {expected_prev}")


# ---------------------------------------------------------------------------------------
# chapter 16: bigger and batched

# (each name's mean loss per token, its number of target tokens): batches to check with
BATCHES = [
    ([2.0, 3.0], [1, 3]),
    ([2.5, 1.0, 4.0, 3.25], [6, 2, 15, 4]),
    ([3.3], [7]),
    ([1.5, 1.5, 1.5], [3, 9, 5]),
]


@checker
def check_batch_loss(fn):
    """`fn(losses, counts) -> float`: the loss of a batch, the mean over all its tokens."""
    for losses, counts in BATCHES:
        got = _call(fn, list(losses), list(counts))
        expected = sum(loss * count for loss, count in zip(losses, counts)) / sum(counts)
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise Wrong(f"batch_loss({losses}, {counts}) should be a number, got {_short(got)}")
        if abs(got - expected) <= TOLERANCE:
            continue
        hint = ""
        if abs(got - sum(losses) / len(losses)) <= TOLERANCE:
            hint = ": that is the mean of the names' means; weigh each name by its tokens"
        elif abs(got - sum(loss * count for loss, count in zip(losses, counts))) <= TOLERANCE:
            hint = ": that is the sum over the tokens; divide by how many there are"
        raise Wrong(f"batch_loss({losses}, {counts}) = {_short(got)}, expected {expected}{hint}")
    return "batch loss: the mean over every token of the batch, long names weighing more"


@checker
def check_held_out_split(fn):
    """`fn(docs) -> (train, held_out)`: makemore's split, the held-out names last."""
    for count in (20, 9, 5000, 32033):
        docs = [f"name{i}" for i in range(count)]
        got = _call(fn, list(docs))
        expected = split(docs)
        if not (
            isinstance(got, (tuple, list))
            and len(got) == 2
            and all(isinstance(part, (list, tuple)) for part in got)
        ):
            raise Wrong(
                f"split of {count} names: return (train, held_out), two lists, got {_short(got)}"
            )
        train, held = (list(part) for part in got)
        if len(held) != len(expected[1]):
            raise Wrong(
                f"split of {count} names: {len(held)} held out, expected {len(expected[1])} "
                "(a tenth, rounded down, and at most 1,000)"
            )
        if (train, held) != (list(expected[0]), list(expected[1])):
            raise Wrong(f"split of {count} names: hold out the last names, train on all the others")
    return "held-out split: the last tenth of the shuffled names, at most 1,000"


__all__ = [
    "check_batch_loss",
    "check_cross_entropy",
    "check_held_out_split",
    "check_dot_backward",
    "check_float_softmax",
    "check_gc_paused",
    "check_linear_backward",
    "check_mul_op",
    "check_rmsnorm_backward",
    "check_softmax_backward_kernel",
    "check_speedups",
    "check_topological_order",
]
