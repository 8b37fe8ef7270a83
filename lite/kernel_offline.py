"""In the site's kernel: offline, a chapter's numpy and matplotlib cells say in one line
that they need the network and show the output stored with the book, and Run All goes on.

Such a cell ends without an error (its note says that it did not run): JupyterLite's
kernel manager cancels every queued cell after an error reply, whatever the cell's
`raises-exception` tag asks.

static/pyodide/boot.mjs puts this module in the browser kernel's site-packages and an
IPython startup file that calls `install(site_url)`.  numpy, matplotlib and the rest of
Pyodide's compiled packages load from Pyodide's CDN; the build lists the cells that need
them (`needs-cdn`) with their stored outputs in offline-outputs.json, by the sha256 of
their source.  Any other error shows its usual traceback.
"""

import hashlib
import importlib.util
import json
import sys

from IPython import get_ipython

NOTE = (
    "\x1b[1;33moffline:\x1b[0m this cell needs numpy/matplotlib, which load from "
    "Pyodide's CDN and could not be loaded; {shown}. Run it again online; the rest of the "
    "chapter runs offline."
)


def _source_key(source):
    return hashlib.sha256(source.rstrip().encode()).hexdigest()


class OfflineCells:
    """Remembers the cell being run; shows the stored outputs of a needs-cdn cell that failed."""

    def __init__(self, shell, site_url):
        self.shell = shell
        self.site_url = site_url
        self.cell = ""
        self._stored = None

    def pre_run_cell(self, info):
        self.cell = info.raw_cell or ""

    def stored(self):
        if self._stored is None:
            try:
                from pyodide.http import open_url

                self._stored = json.load(open_url(self.site_url + "offline-outputs.json"))
            except Exception:  # no list: every error is shown as it is
                self._stored = {}
        return self._stored

    def handler(self, shell, etype, evalue, tb, tb_offset=None):
        outputs = self.stored().get(_source_key(self.cell))
        online = importlib.util.find_spec("numpy") is not None
        if outputs is None or online:
            shell.showtraceback(
                (etype, evalue, tb), tb_offset=tb_offset, running_compiled_code=True
            )
            return None
        for output in outputs:
            show(output)
        shown = "its output as stored in the book is above" if outputs else "it has no output"
        print(NOTE.format(shown=shown), file=sys.stderr)
        return None


def show(output):
    """One stored output (nbformat) shown again: text as text, the rest as display data."""
    from IPython.display import publish_display_data

    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        print("".join(text) if isinstance(text, list) else text, end="")
    elif kind in {"display_data", "execute_result"}:
        data = {k: "".join(v) if isinstance(v, list) else v for k, v in output["data"].items()}
        publish_display_data(data, output.get("metadata", {}))


def quiet_package_errors():
    """Pyodide's loader logs each package it cannot download as a console error: offline,
    every needs-cdn cell a reader runs. The cell's note says it, in the notebook."""
    try:
        import js
        import pyodide_kernel.kernel as kernel
        from pyodide.ffi import create_proxy, to_js
        from pyodide_js import loadPackagesFromImports
    except ImportError:
        return
    options = to_js(
        {"errorCallback": create_proxy(lambda message: None)},
        dict_converter=js.Object.fromEntries,
    )

    async def load_packages_from_imports(code):
        await loadPackagesFromImports(code, options)

    kernel._load_packages_from_imports = load_packages_from_imports


def install(site_url):
    """Watch the kernel's cells (site_url: the site's root, where offline-outputs.json is)."""
    shell = get_ipython()
    if shell is None:
        return
    cells = OfflineCells(shell, site_url)
    shell.events.register("pre_run_cell", cells.pre_run_cell)
    shell.set_custom_exc((Exception,), cells.handler)
    quiet_package_errors()
