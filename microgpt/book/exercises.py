"""Checkers for the exercises of chapters 00-05: run the reader's function, say what is wrong.

Each `check_*` calls the reader's function on a few cases chosen to expose the
usual mistakes and returns a `Check`: true when every case passes, and shown as
one line saying what passed or what went wrong and how to fix it.

A checker is written as a function that returns its success message and raises
`Wrong` at the first wrong case; `@checker` turns that into a `Check`. The
checkers of chapters 06-15 (`microgpt.book.exercises_passes`) are built the same way.
Whatever the reader's function returns, the reader gets a verdict: a result of the
wrong kind (None from a forgotten `return`, a `Value` where a float is due, a list of
the wrong shape) that a checker cannot even read is a wrong answer too, said as such.
"""

import functools
import math
import reprlib
import sys
from contextlib import contextmanager

from .. import numeric, stages
from ..config import AdamConfig, GPTConfig
from ..engine import Value, topological_order
from ..errors import single_line
from ..model import param_shapes
from ..optim import Adam
from ..train import Run


class Check:
    """The verdict of a checker: truthy when passed, displayed as its message."""

    def __init__(self, ok, message):
        self.ok = ok
        self.message = single_line(("✓ " if ok else "✗ ") + message)

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return self.message


class Wrong(Exception):
    """Raised inside a checker at the first wrong case; becomes a failed `Check`."""


_results = []  # what the reader's function returned during the check that runs now


def checker(check):
    """Turn `check(fn) -> success message` (raising `Wrong`) into `check(fn) -> Check`.

    A checker that fails on what the reader's function returned (None, a `Value` where
    a number is due, the wrong shape: a `TypeError` inside the checker) answers with
    a wrong-answer `Check` that shows the result and what was due; so does one handed
    something that is not a function.
    """
    expected = (check.__doc__ or "").strip().split("\n")[0].rstrip(".")

    @functools.wraps(check)
    def run(fn):
        if not callable(fn):
            return Check(
                False, f"{check.__name__} needs your function itself, not {reprlib.repr(fn)}"
            )
        outer = list(_results)
        _results.clear()
        try:
            return Check(True, check(fn))
        except Wrong as e:
            return Check(False, str(e))
        except Exception:
            if not _results:  # nothing of the reader's was read: a bug of the checker
                raise
            return Check(False, _unreadable(fn, _results[-1], expected))
        finally:
            _results[:] = outer

    return run


def _holds_value(result):
    if isinstance(result, (list, tuple)):
        return any(_holds_value(item) for item in result[:1000])
    return isinstance(result, Value)


def _unreadable(fn, result, expected):
    """The message for a result the checker could not read."""
    name = getattr(fn, "__name__", "your function")
    if result is None:
        hint = "; did it forget `return`?"
    elif _holds_value(result):
        hint = "; it holds Values: return plain floats (a Value's number is its .data)"
    else:
        hint = ""
    return f"{name} returned {reprlib.repr(result)}, not what is due: {expected}{hint}"


def call(fn, *args):
    """The reader's result; an exception it raises becomes a `Wrong` naming it.

    The reader's exception is kept as the `__cause__`, so that a checker with a
    better hint for it (an overflow, the recursion limit) can catch the `Wrong`.
    """
    name = getattr(fn, "__name__", "your function")
    try:
        result = fn(*args)
        _results.append(result)
        return result
    except NotImplementedError as e:
        raise Wrong(f"{name} is not written yet: fill in its body, rerun") from e
    except Exception as e:
        shown = ", ".join(reprlib.repr(a) for a in args)
        raise Wrong(f"{name}({shown}) raised {type(e).__name__}: {e}") from e


def close(a, b, tol=1e-9):
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


# ----------------------------------------------------------------------------
# chapter 00: the size of the model


@checker
def check_num_params(num_params):
    """`num_params(cfg, vocab_size)`: how many numbers the GPT learns, from its shapes."""
    configs = [(GPTConfig(), 27), (GPTConfig(n_layer=2), 27), (GPTConfig(n_embd=32), 50)]
    for cfg, vocab_size in configs:
        got = call(num_params, cfg, vocab_size)
        expected = sum(rows * cols for _, rows, cols in param_shapes(cfg, vocab_size))
        if got != expected:
            embeddings = (2 * vocab_size + cfg.block_size) * cfg.n_embd
            if got == embeddings:
                hint = "the layers are missing: each holds 12 * n_embd**2 numbers"
            elif got == expected - embeddings:
                hint = "wte, wpe and lm_head are missing"
            else:
                hint = "add wte, wpe, lm_head and 12 * n_embd**2 per layer"
            raise Wrong(f"{cfg} with vocab {vocab_size}: got {got}, expected {expected}; {hint}")
    return "num_params: embeddings, lm_head and 12 * n_embd**2 per layer"


# ----------------------------------------------------------------------------
# chapter 01: the tokenizer


@checker
def check_encode(encode):
    """`encode(doc, chars)`: the ids of doc's characters in chars, BOS = len(chars) at both ends."""
    chars = list("abcdefghijklmnopqrstuvwxyz")
    bos = len(chars)
    for doc in ["emma", "ann", "z", ""]:
        got = call(encode, doc, chars)
        expected = [bos] + [chars.index(ch) for ch in doc] + [bos]
        if not isinstance(got, list):
            raise Wrong(f"encode({doc!r}, chars) returned a {type(got).__name__}, not a list")
        if got == expected:
            continue
        if got == expected[1:-1]:
            raise Wrong(f"encode({doc!r}) = {got}: BOS ({bos}) is missing at both ends")
        if got[:1] != [bos]:
            raise Wrong(f"encode({doc!r}) = {got}: should start with BOS = {bos}")
        if got[-1:] != [bos]:
            raise Wrong(f"encode({doc!r}) = {got}: should end with BOS = {bos}")
        raise Wrong(f"encode({doc!r}) = {got}, expected {expected} (an id is the index in chars)")
    return "encode: ids are indices into chars, with BOS at both ends"


# ----------------------------------------------------------------------------
# chapters 02-03: softmax, a new Value op, RMSNorm


@checker
def check_softmax(softmax):
    """`softmax(logits)` on a list of floats: probabilities, stable for large logits."""
    for logits in ([1.0, 2.0, 3.0], [0.0], [-2.0, 0.5, 0.5, 4.0], [1000.0, 1001.0, 1002.0]):
        try:
            got = call(softmax, logits)
        except Wrong as e:
            if logits[0] == 1000.0 and isinstance(e.__cause__, OverflowError):
                raise Wrong(
                    "softmax overflows on logits near 1000: subtract max(logits) before exp()"
                ) from e
            raise
        expected = numeric.softmax(logits)
        got = [getattr(p, "data", p) for p in got]
        if len(got) != len(expected):
            raise Wrong(f"softmax({logits}) gave {len(got)} numbers, expected {len(logits)}")
        if not close(sum(got), 1.0):
            raise Wrong(f"softmax({logits}) sums to {sum(got)}, not 1: divide by the total")
        if not all(close(g, e) for g, e in zip(got, expected)):
            raise Wrong(f"softmax({logits}) = {got}, expected {expected}")
    return "softmax: matches exp(x - max) / sum, also for logits near 1000"


@checker
def check_tanh(tanh):
    """`tanh(x)` for a `Value` x: the right value, and a gradient that flows back to x."""
    for x in (0.5, -1.3, 0.0, 2.0):
        v = Value(x)
        out = call(tanh, v)
        if not isinstance(out, Value):
            raise Wrong(f"tanh returned a {type(out).__name__}: return a Value")
        if not close(out.data, math.tanh(x)):
            raise Wrong(f"tanh({x}).data = {out.data}, expected {math.tanh(x)}")
        (out * 3.0).backward()  # a parent above tanh: the chain rule must scale the gradient
        expected = 3.0 * (1 - math.tanh(x) ** 2)
        if v.grad == 0 and expected != 0:
            raise Wrong(
                f"x.grad stayed 0 at x={x}: give the output x as a child, with its local grad"
            )
        if not close(v.grad, expected, 1e-7):
            raise Wrong(
                f"at x={x}, d(3*tanh(x))/dx came out {v.grad}, expected {expected}: "
                "the local gradient of tanh is 1 - tanh(x)**2"
            )
    return "tanh: values and gradients match 1 - tanh(x)**2"


@checker
def check_rmsnorm(rmsnorm):
    """`rmsnorm(x)` on a list of floats: x / sqrt(mean(x**2) + 1e-5), no mean subtracted."""
    for x in ([0.0, 0.0, 0.0], [3.0, 3.0], [1.0, 2.0, 3.0, 4.0], [0.5, -0.5, 2.0]):
        try:
            got = call(rmsnorm, x)
        except Wrong as e:
            if x == [0.0, 0.0, 0.0] and isinstance(e.__cause__, ZeroDivisionError):
                raise Wrong(f"rmsnorm of zeros failed ({e}): add 1e-5 to ms") from e
            raise
        got = [getattr(g, "data", g) for g in got]
        expected = numeric.rmsnorm(x)
        if all(close(g, e) for g, e in zip(got, expected)) and len(got) == len(x):
            continue
        if x == [3.0, 3.0] and all(abs(g) < 1e-3 for g in got):
            raise Wrong("rmsnorm([3, 3]) is ~0: do not subtract the mean (that is LayerNorm)")
        raise Wrong(f"rmsnorm({x}) = {got}, expected {expected}")
    return "rmsnorm: x / sqrt(mean(x**2) + 1e-5)"


# ----------------------------------------------------------------------------
# chapter 04: Adam


@checker
def check_adam(adam_update):
    """`adam_update(data, grad, m, v, step, num_steps, cfg)` -> (data, m, v) for one parameter."""
    cfg = AdamConfig()
    num_steps = 10
    p = Value(0.3)
    reference = Adam([p], cfg)
    data, m, v = 0.3, 0.0, 0.0
    for step, grad in enumerate([0.5, -0.2, 0.1, 0.7, -0.4, 0.0, 0.3, 0.2, -0.1, 0.05]):
        p.grad = grad
        reference.step(step, num_steps)
        got = call(adam_update, data, grad, m, v, step, num_steps, cfg)
        if not (isinstance(got, tuple) and len(got) == 3):
            raise Wrong("adam_update must return a tuple (data, m, v)")
        data, m, v = got
        if not close(m, reference.m[0]):
            raise Wrong(f"step {step}: m = {m}, expected {reference.m[0]} (beta1 average)")
        if not close(v, reference.v[0]):
            raise Wrong(f"step {step}: v = {v}, expected {reference.v[0]} (beta2 of grad**2)")
        if not close(data, p.data):
            hint = (
                "divide m and v by (1 - beta**(step + 1)) before the update"
                if step == 0
                else "the learning rate decays: lr * (1 - step / num_steps)"
            )
            raise Wrong(f"step {step}: data = {data}, expected {p.data}; {hint}")
    return "adam_update: ten steps match microgpt.optim.Adam"


NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn"]


@checker
def check_constant_lr(train_constant):
    """`train_constant(docs, num_steps)`: the losses of a seed-42 run whose learning rate
    stays at `lr` (no decay)."""

    def losses(adam):
        run = Run(NAMES, stages.load("flat"), seed=42, adam=adam)
        return [loss for _, loss in run.train(8)]

    got = call(train_constant, list(NAMES), 8)
    if not (isinstance(got, list) and len(got) == 8):
        raise Wrong("train_constant(docs, 8) must return a list of 8 losses")
    constant, decaying = losses(AdamConfig(decay=False)), losses(AdamConfig())
    if all(close(g, d) for g, d in zip(got, decaying)):
        raise Wrong("these are the losses of the decaying run: pass adam=AdamConfig(decay=False)")
    for step, (g, c) in enumerate(zip(got, constant)):
        if not close(g, c):
            raise Wrong(f"step {step + 1}: loss {g}, expected {c} (AdamConfig(decay=False))")
    return "train_constant: eight steps match a run with AdamConfig(decay=False)"


# ----------------------------------------------------------------------------
# chapter 05: the size of the graph


DEFAULT_RECURSION_LIMIT = 1_000  # CPython's; the checks' deep graphs go deeper


@contextmanager
def default_recursion_limit():
    """Python's default recursion limit while a reader's function runs, so that a recursive
    walk fails the same way whatever was imported before (PyTorch's compiler raises the
    limit to 2,000 for good)."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(min(before, DEFAULT_RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@checker
def check_count_nodes(count_nodes):
    """`count_nodes(root)`: distinct Values reachable from `root`, itself included."""
    a, b = Value(2.0), Value(3.0)
    shared = a * b
    diamond = shared + shared.exp()  # `shared` is reached twice but is one node
    chain = Value(1.0)
    # Deeper than Python's default recursion limit (1,000), yet shallow enough that the
    # browser's smaller stack can still free the chain, even from inside the traceback of
    # a reader's exception that keeps it alive (Pyodide's stack ran out at 2,000).
    for _ in range(1_200):
        chain = chain + 1.0
    for name, root in (("a single Value", a), ("a*b + exp(a*b)", diamond), ("a long chain", chain)):
        expected = len(topological_order(root))
        try:
            with default_recursion_limit():
                got = call(count_nodes, root)
        except Wrong as e:
            if isinstance(e.__cause__, RecursionError):
                raise Wrong(
                    f"{name}: RecursionError; walk the graph with an explicit stack, not recursion"
                ) from e
            raise
        if got == expected:
            continue
        if isinstance(got, int) and got > expected:
            raise Wrong(
                f"{name}: counted {got}, expected {expected}; count a shared node once (a set)"
            )
        raise Wrong(f"{name}: counted {got}, expected {expected}")
    return "count_nodes: shared nodes once, deep graphs without recursion"
