"""Small helpers for the book's notebooks: compare, show source, show progress.

Everything here works in a plain terminal, in JupyterLab and in the browser
(JupyterLite on Pyodide): no widgets, only printed text and rich display data.
Outputs are deterministic once a cell finishes, so nbval can compare them.
"""

import inspect
import math
import sys
import time

from .. import model as baseline
from ..train import format_step

# ----------------------------------------------------------------------------
# cmp: is the piece we built by hand the same as the reference?


def flatten(x):
    """Numbers of a scalar, `Value`, array or nested list, in order; Values give their `.data`."""
    if hasattr(x, "tolist"):  # numpy arrays and torch tensors
        x = x.tolist()
    if hasattr(x, "data") and not isinstance(x, (list, tuple, dict)):
        x = x.data  # a Value
    if isinstance(x, dict):
        return [n for key in sorted(x) for n in flatten(x[key])]
    if isinstance(x, (list, tuple)):
        return [n for item in x for n in flatten(item)]
    return [float(x)]


def cmp(name, ours, reference, tol=1e-9):
    """Print whether `ours` equals `reference` exactly, approximately, and the largest gap.

    Returns True when every number is within `tol` (relative or absolute), so it
    reads well in an assert: `assert cmp("softmax", mine, package_softmax(x))`.
    """
    a, b = flatten(ours), flatten(reference)
    if len(a) != len(b):
        print(f"{name:<16s} | size differs: {len(a)} numbers vs {len(b)} in the reference")
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
    source = inspect.getsource(obj)
    html = highlighted_html(source) if in_notebook() else None
    if html is None:
        print(source, end="")
        return
    from IPython.display import display

    display({"text/plain": source, "text/html": html}, raw=True)


# ----------------------------------------------------------------------------
# progress: a text bar redrawn in place with "\r", so it works wherever text does


def bar(done, total, width=30):
    filled = width * done // total if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def progress(iterable, total=None, label="", status=None, every=0.1):
    """Yield from `iterable` while redrawing a progress bar at most every `every` seconds.

    `status(item)` may add a short text such as the loss. The last drawing is the
    only one left in a saved notebook, and it carries no timings, so it is
    deterministic. Live, the elapsed seconds are shown too.
    """
    total = len(iterable) if total is None else total
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


def attention_weights(cfg, weights, tokens):
    """`weights[layer][head][pos]`: the attention distribution over positions 0..pos.

    Runs the baseline `GPT.forward` on `tokens` and records the result of every
    `softmax` it calls: per position, one per head and layer, in that order.
    """
    gpt = baseline.GPT(cfg, len(weights["wte"]), weights)
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
