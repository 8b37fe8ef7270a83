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


def stored_outputs(source, folder="."):
    """The outputs stored with the code cell whose source is `source`, in the first
    notebook of `folder` that has one (the chapters sit in the kernel's folder); []."""
    if not source:
        return []
    for path in sorted(Path(folder).glob("*.ipynb")):
        try:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError):
            continue
        for cell in cells:
            if (
                cell.get("cell_type") == "code"
                and text(cell.get("source")).strip() == source.strip()
            ):
                return cell.get("outputs", [])
    return []


def text(value):
    """A notebook's multi-line string: a list of lines or one string."""
    return "".join(value) if isinstance(value, list) else value or ""


def show_output(output):
    """Show one stored output again: text as text, rich data (tables, figures) as itself."""
    kind = output.get("output_type")
    if kind == "stream":
        print(text(output.get("text")), end="")
    elif kind in ("display_data", "execute_result"):
        data = {mime: text(value) for mime, value in output.get("data", {}).items()}
        if not in_notebook():
            print(data.get("text/plain", ""))
            return
        from IPython.display import display

        display(data, metadata=output.get("metadata", {}), raw=True)
