"""Cells that need PyTorch, and a kernel that has none (the browser's, on Pyodide).

A chapter's cell that needs PyTorch starts with `if needs_torch():`. Where PyTorch is
installed that is all it does. Where it is not, the cell prints one line saying so and
shows again what the cell printed when the chapter was run (its outputs as the notebook
stores them), so the reader still sees the figures and Run All goes on: every later cell
that needs PyTorch is guarded the same way. Such cells carry the tag `differs-in-browser`
(the browser test runs them and requires no error; nbval compares them in CPython).
"""

import json
import sys
from importlib.util import find_spec
from pathlib import Path

from ..arguments import ArgumentError, checked, optional, path, shown
from ..arguments import text as a_str
from .notebook import in_notebook

NOTE = (
    "needs PyTorch, which this kernel does not have (the browser never has it): run the "
    "chapter in local Python with `pip install -e '.[torch]'`; below, what it printed there"
)


def have_torch():
    """Whether PyTorch can be imported here (looked up, not imported)."""
    return find_spec("torch") is not None


def needs_torch():
    """True where PyTorch is installed; elsewhere print `NOTE`, show the cell's stored
    outputs, and return False."""
    if have_torch():
        return True
    print(NOTE)
    for output in stored_outputs(current_cell_source()):
        show_output(output)
    return False


def current_cell_source():
    """The source of the cell the kernel runs now, or None outside a notebook."""
    if not in_notebook():
        return None
    inputs = sys.modules["IPython"].get_ipython().user_ns.get("In") or [None]
    return inputs[-1]


@checked(source=optional(a_str), folder=path)
def stored_outputs(source, folder="."):
    """The outputs stored with the code cell whose source is `source`, in the first
    notebook of `folder` that has one (the chapters sit in the kernel's folder); []."""
    if not source:
        return []
    try:
        notebooks = sorted(Path(folder).glob("*.ipynb"))
    except OSError:  # a folder it cannot read has no notebook to show
        return []
    for nb_path in notebooks:
        try:
            cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for cell in cells if isinstance(cells, list) else []:
            if (
                isinstance(cell, dict)
                and cell.get("cell_type") == "code"
                and is_lines(cell.get("source"))
                and text(cell.get("source")).strip() == source.strip()
            ):
                return cell.get("outputs", [])
    return []


def is_lines(value):
    """Whether `value` is a notebook's multi-line string: a str, a list of str, or None."""
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(line, str) for line in value))
    )


def lines(value, label):
    if not is_lines(value):
        raise ArgumentError(f"{label} must be a str or a list of lines (str), not {shown(value)}")
    return value


@checked(value=lines)
def text(value):
    """A notebook's multi-line string: a list of lines or one string."""
    return "".join(value) if isinstance(value, list) else value or ""


def stored_output(value, label):
    """One output as a notebook stores it: a dict with an `output_type`, its text as lines,
    its data {mime type: lines, or JSON as a dict}."""
    output = value if isinstance(value, dict) else {}
    data = output.get("data", {})
    ok = isinstance(output.get("output_type"), str) and is_lines(output.get("text"))
    ok = ok and isinstance(data, dict)
    if not (ok and all(is_lines(v) or isinstance(v, dict) for v in data.values())):
        raise ArgumentError(
            f"{label} must be a notebook's output (a dict with an output_type), not {shown(value)}"
        )
    return value


@checked(output=stored_output)
def show_output(output):
    """Show one stored output again: text as text, rich data (tables, figures) as itself."""
    kind = output.get("output_type")
    if kind == "stream":
        print(text(output.get("text")), end="")
    elif kind in ("display_data", "execute_result"):
        data = {
            mime: value if isinstance(value, dict) else text(value)
            for mime, value in output.get("data", {}).items()
        }
        if not in_notebook():
            print(data.get("text/plain", ""))
            return
        from IPython.display import display

        display(data, metadata=output.get("metadata", {}), raw=True)
