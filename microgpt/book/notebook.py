"""Small helpers for the book's notebooks: compare, show source, show progress.

Everything here works in a plain terminal, in JupyterLab and in the browser
(JupyterLite on Pyodide): no widgets, only printed text and rich display data.
Outputs are deterministic once a cell finishes, so nbval can compare them.
"""

import inspect
import math
import numbers
import sys
import time

from .. import model as baseline
from ..arguments import ArgumentError, checked, function, instance, number, optional, shown, whole
from ..arguments import text as a_str
from ..config import GPTConfig
from ..errors import single_line
from ..model import param_shapes
from ..train import format_step
from .checks import run as a_run
from .checks import token_ids

# ----------------------------------------------------------------------------
# cmp: is the piece we built by hand the same as the reference?

MAX_DEPTH = 100  # nesting of the lists a comparison reads (a matrix is 2)


def _leaf(x):
    """A number, or a `Value`'s number; None for a container."""
    if hasattr(x, "tolist"):  # numpy arrays and scalars, torch tensors
        x = x.tolist()
    if hasattr(x, "data") and not isinstance(x, (list, tuple, dict)):
        x = x.data  # a Value
    return None if isinstance(x, (list, tuple, dict)) else x


def _items(x):
    """The items of a container, in order (a dict's by sorted key), or None for a leaf."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, dict):
        try:
            return [x[key] for key in sorted(x)]
        except TypeError:  # keys that do not sort
            raise ArgumentError(f"cmp: the keys of a dict must sort, not {shown(x)}") from None
    return list(x) if isinstance(x, (list, tuple)) else None


def flatten(x):
    """Numbers of a scalar, `Value`, array or nested list, in order; Values give their `.data`."""
    return _flatten(x, 0)


def _flatten(x, depth):
    items = _items(x)
    if items is None:
        leaf = _leaf(x)
        if not isinstance(leaf, numbers.Real):
            raise ArgumentError(f"cmp compares numbers (or lists of them), not {shown(leaf)}")
        return [float(leaf)]
    if depth >= MAX_DEPTH:
        raise ArgumentError(f"cmp: lists nested more than {MAX_DEPTH} deep")
    return [n for item in items for n in _flatten(item, depth + 1)]


def _shape(x, depth=0):
    """The nesting of `x`: None for a number, a tuple of its items' shapes for a list,
    tuple or array, and the sorted keys with their shapes for a dict."""
    if depth >= MAX_DEPTH:
        raise ArgumentError(f"cmp: lists nested more than {MAX_DEPTH} deep")
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, dict):
        return ("dict", tuple((repr(k), _shape(x[k], depth + 1)) for k in sorted(x, key=repr)))
    if isinstance(x, (list, tuple)):
        return tuple(_shape(item, depth + 1) for item in x)
    return None


def _describe(s):
    """A shape for a message: `2x3` for a rectangle, else what it is."""
    dims = []
    while isinstance(s, tuple) and s[:1] != ("dict",):
        dims.append(len(s))
        if not s or any(item != s[0] for item in s):
            break
        s = s[0]
    if s is None or (isinstance(s, tuple) and s[:1] != ("dict",)):
        return "x".join(map(str, dims)) if dims else "a number"
    keys = ", ".join(key for key, _ in s[1][:6]) + (", ..." if len(s[1]) > 6 else "")
    kind = f"a dict of keys {keys}" if keys else "an empty dict"
    return kind if not dims else "x".join(map(str, dims)) + f" of {kind}s"


@checked(name=a_str, tol=number(0, 1e300))
def cmp(name, ours, reference, tol=1e-9):
    """Print whether `ours` equals `reference` exactly, approximately, and the largest gap.

    Returns True when every number is within `tol` (relative or absolute), so it
    reads well in an assert: `assert cmp("softmax", mine, package_softmax(x))`. Two
    values of different shapes (2x3 and 3x2, dicts with other keys) are not equal.
    """
    name = single_line(name)
    a, b = flatten(ours), flatten(reference)
    if len(a) != len(b):
        print(f"{name:<16s} | size differs: {len(a)} numbers vs {len(b)} in the reference")
        return False
    ours_shape, reference_shape = _shape(ours), _shape(reference)
    if ours_shape != reference_shape:
        mine, theirs = _describe(ours_shape), _describe(reference_shape)
        if mine == theirs:
            mine, theirs = "one nesting", "another"
        print(f"{name:<16s} | shape differs: {mine} vs {theirs} in the reference")
        return False
    exact = a == b
    close = all(math.isclose(x, y, rel_tol=tol, abs_tol=tol) for x, y in zip(a, b))
    maxdiff = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    print(
        f"{name:<16s} | exact: {str(exact):5s} | approximate: {str(close):5s}"
        f" | maxdiff: {maxdiff:.1e}"
    )
    return close


# ----------------------------------------------------------------------------
# show_source: the package's code, highlighted, right in the notebook


@checked(source=a_str)
def highlighted_html(source):
    """The source as HTML with inline colours, or None when pygments is missing."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return None
    return highlight(source, PythonLexer(), HtmlFormatter(noclasses=True))


def in_notebook():
    """True inside a Jupyter kernel (ipykernel locally, the Pyodide kernel in the browser)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def show_source(obj):
    """Show the source of a function, class or module from `microgpt`, highlighted if possible."""
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError):  # a number, a builtin, something made at run time
        raise ArgumentError(
            f"show_source needs a function, class or module with a source file, not {shown(obj)}"
        ) from None
    html = highlighted_html(source) if in_notebook() else None
    if html is None:
        print(source, end="")
        return
    from IPython.display import display

    display({"text/plain": source, "text/html": html}, raw=True)


# ----------------------------------------------------------------------------
# progress: a text bar redrawn in place with "\r", so it works wherever text does


@checked(done=whole(0), total=whole(0), width=whole(1, 1000))
def bar(done, total, width=30):
    filled = width * done // total if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


@checked(total=optional(whole(0)), label=a_str, status=optional(function), every=number(0, 3600))
def progress(iterable, total=None, label="", status=None, every=0.1):
    """Yield from `iterable` while redrawing a progress bar at most every `every` seconds.

    `status(item)` may add a short text such as the loss. The last drawing is the
    only one left in a saved notebook, and it carries no timings, so it is
    deterministic. Live, the elapsed seconds are shown too. An iterable without a
    length (a generator) needs `total`.
    """
    if total is None:
        if not hasattr(iterable, "__len__"):
            raise ArgumentError(
                f"progress: {shown(iterable)} has no length; give total=, the number of items"
            )
        total = len(iterable)
    try:
        items = iter(iterable)
    except TypeError:
        raise ArgumentError(f"progress: iterable must be iterable, not {shown(iterable)}") from None
    return _progress(items, total, single_line(label), status, every)


def _progress(iterable, total, label, status, every):
    out = sys.stdout
    start = last = time.perf_counter()
    done, extra = 0, ""
    prefix = f"{label} " if label else ""
    for item in iterable:
        yield item
        done += 1
        extra = f" {status(item)}" if status else ""
        now = time.perf_counter()
        if now - last >= every and done < total:
            last = now
            out.write(f"\r{prefix}{bar(done, total)}{extra} ({now - start:.0f} s)")
            out.flush()
    out.write(f"\r{prefix}{bar(done, total)}{extra}\n")
    out.flush()


@checked(run=a_run, num_steps=whole(1), log_every=whole(1), label=a_str)
def train_live(run, num_steps, log_every=100, label="train"):
    """Train `run` for `num_steps` with a progress bar; print the original's log line
    every `log_every` steps and at the last step. Returns the list of losses."""
    losses = []
    out = sys.stdout
    for step, loss in progress(
        run.train(num_steps), num_steps, label, status=lambda s: f"loss {s[1]:.4f}"
    ):
        losses.append(loss)
        if (step + 1) % log_every == 0 or step + 1 == num_steps:
            # blank out the bar drawn so far on this line, then print the log line in its place
            out.write(f"\r{' ' * 79}\r{format_step(step, num_steps, loss)}\n")
    return losses


# ----------------------------------------------------------------------------
# attention_weights: what each position looked at, read off the baseline forward pass


def _model_weights(cfg, weights, label):
    """`weights` checked against the shapes of `cfg` (the vocabulary from wte's rows)."""
    from_file = "as Run(...).model.weights() or checkpoint.load gives them"
    wte = weights.get("wte") if isinstance(weights, dict) else None
    if not isinstance(wte, list) or not wte:
        raise ArgumentError(
            f"{label} must be a model's weights ({from_file}), not {shown(weights)}"
        )
    for name, rows, cols in param_shapes(cfg, len(wte)):
        mat = weights.get(name)
        if not (
            isinstance(mat, list)
            and len(mat) == rows
            and all(isinstance(row, list) and len(row) == cols for row in mat)
        ):
            raise ArgumentError(f"{label}[{name!r}] must be {rows}x{cols} ({from_file})")
    return weights


@checked(cfg=instance(GPTConfig))
def attention_weights(cfg, weights, tokens):
    """`weights[layer][head][pos]`: the attention distribution over positions 0..pos.

    Runs the baseline `GPT.forward` on `tokens` and records the result of every
    `softmax` it calls: per position, one per head and layer, in that order.
    """
    _model_weights(cfg, weights, "attention_weights: weights")
    vocab_size = len(weights["wte"])
    label = f"attention_weights: tokens (at most block_size {cfg.block_size})"
    tokens = token_ids(tokens, label, vocab_size, 1, cfg.block_size)
    gpt = baseline.GPT(cfg, vocab_size, weights)
    calls = []
    original = baseline.softmax

    def recording_softmax(logits):
        probs = original(logits)
        calls.append([p.data for p in probs])
        return probs

    baseline.softmax = recording_softmax
    try:
        keys, values = gpt.empty_cache()
        for pos_id, token_id in enumerate(tokens):
            gpt.forward(token_id, pos_id, keys, values)
    finally:
        baseline.softmax = original
    per_pos = cfg.n_layer * cfg.n_head
    return [
        [
            [calls[pos * per_pos + li * cfg.n_head + h] for pos in range(len(tokens))]
            for h in range(cfg.n_head)
        ]
        for li in range(cfg.n_layer)
    ]
