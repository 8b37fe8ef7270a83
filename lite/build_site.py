"""Build the book's static JupyterLite site, runnable with no network at all.

Pyodide and the pure-Python wheels its kernel loads at boot are fetched at
build time from the package registries (npm, PyPI) into a gitignored cache, so
the served site never reaches a CDN.  Only numpy/matplotlib and friends, whose
browser builds exist only on Pyodide's CDN, keep absolute CDN URLs in the lock.

Usage: python lite/build_site.py [--data PATH] [--output DIR] [--force]
Relative paths are relative to the caller's working directory.  The download
cache is lite/_cache, or MICROGPT_SITE_CACHE when set.
"""

import html
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zipfile
import zlib
from pathlib import Path

import pyodide_dist

import microgpt
from microgpt import data as names_data
from microgpt import stages
from microgpt.book import chapters
from microgpt.errors import MicrogptError, single_line
from microgpt.files import OutputPathError, check_output_folder, sha256, write_atomic
from microgpt.tools.args import ArgumentParser

LITE = Path(__file__).resolve().parent
ROOT = LITE.parent
BOOK = ROOT / "book"
PACKAGE = ROOT / "microgpt"
CACHE = Path(os.environ.get("MICROGPT_SITE_CACHE") or LITE / "_cache").resolve()
OUTPUT = LITE / "_output"
BUILD_INFO = "build-info.json"
BUILD_LOG = "jupyter-lite-build.log"  # in CACHE: the last `jupyter lite build` output

#: Pyodide core files the site serves itself
PYODIDE_CORE = pyodide_dist.CORE
#: the kernel's Pyodide: started from its snapshot by boot.mjs, with every package at once
KERNEL_SETTINGS = {
    "pyodideUrl": "./static/pyodide/boot.mjs",
    "loadPyodideOptions": {"packages": pyodide_dist.KERNEL_PACKAGES},
}
#: JupyterLite apps the site ships
APPS = ["lab", "notebooks", "tree", "edit", "repl"]
KERNEL_PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"
#: site-relative link to train in the browser (the REPL app with prefilled code)
REPL_PAGE = "repl/index.html"
#: the landing page's trainer, the icon and the apps' narrow-screen styles, copied from
#: lite/ to the site's root as they are
SITE_FILES = ["train.js", "train-worker.mjs", "favicon.svg", "apps.css"]
#: settings of every JupyterLite app (long code lines wrap: phones), from lite/
SETTINGS = "overrides.json"
#: the package as the trainer's worker unpacks it (its own files, no notebooks' helpers)
PACKAGE_ZIP = "microgpt.zip"
#: stages the landing page offers beyond the pure-Python ones (they load numpy online)
ONLINE_STAGES = {"tensor": "numpy from Pyodide's CDN: online only"}


def log(msg):
    print(f"[site] {msg}", flush=True)


def pyodide_version():
    """The Pyodide version the installed kernel was made for."""
    from jupyterlite_pyodide_kernel.constants import PYODIDE_VERSION

    return PYODIDE_VERSION


def cdn_url(version):
    from jupyterlite_pyodide_kernel.constants import PYODIDE_CDN_URL

    assert version in PYODIDE_CDN_URL
    return PYODIDE_CDN_URL.rstrip("/") + "/"


def child_environment():
    """The environment of the build's commands. npm and jupyter need a home folder: a
    user without one (HOME unset, not in passwd) lends them one in the cache."""
    try:
        Path.home()
    except RuntimeError:
        home = CACHE / "home"
        home.mkdir(parents=True, exist_ok=True)
        return dict(os.environ, HOME=str(home))
    return None  # theirs, as it is


def run(cmd, **kw):
    kw.setdefault("env", child_environment())
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"error: command failed: {' '.join(cmd)} (see output above)")
    return proc


# --- inputs -------------------------------------------------------------------


def find_data(explicit):
    """The names file to ship (absolute), and a line saying where it came from: the
    package's order (`microgpt.data.data_source`: --data, MICROGPT_DATA, ./input.txt),
    then the download cache, then the package's built-in fallback list. The file is
    read as the package reads it (`microgpt.data.read_names`), before anything is
    built: an empty, binary, UTF-16 or oversized file, a folder or a device is the
    package's own one-line error."""
    given = names_data.data_source(explicit)
    if given:
        path, given_by = given
        where = {"--data": f"--data {path}", "MICROGPT_DATA": f"MICROGPT_DATA={path}"}
        where = where.get(given_by, f"./{path}")
        try:
            names_data.read_names(path, given_by)
        except MicrogptError as e:
            raise SystemExit(f"error: {single_line(e)}") from None
        return Path(path).resolve(), f"names from {where}"
    cache = names_data.cache_path()  # None where there is no home folder
    if names_data.cached_names(cache) is not None:  # there, and makemore's intact names.txt
        return cache.resolve(), f"names from the cache {cache}"
    fallback = names_data.FALLBACK_PATH
    if fallback.is_file():
        looked = "--data, MICROGPT_DATA, ./input.txt" + (f" or {cache}" if cache else "")
        return fallback.resolve(), (
            f"WARNING: no names file ({looked}); "
            f"the site ships the package's built-in fallback list {fallback.name}"
        )
    raise SystemExit(f"error: no names file and no {fallback}; pass --data PATH")


def data_description(data):
    """What the shipped names are, for readers (no build-machine paths)."""
    raw = data.read_bytes()
    count = sum(1 for line in raw.decode("utf-8").splitlines() if line.strip())
    if sha256(raw) == names_data.NAMES_SHA256:
        return f"makemore's names.txt ({count:,} names, MIT license)"
    if data.resolve() == names_data.FALLBACK_PATH.resolve():
        return f"the package's built-in fallback list ({count:,} names), not makemore's names.txt"
    return f"a custom names file ({count:,} names), not makemore's names.txt"


def contents_files(data):
    """Site-relative path -> source file for everything served as contents."""
    files = {p.name: p for p in chapters(BOOK)}
    for p in sorted(PACKAGE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            files[str(Path("microgpt") / p.relative_to(PACKAGE))] = p
    files["input.txt"] = data
    return files


def digest(files):
    """sha256 over the names and bytes of `files`, in name order."""
    parts = [name.encode() + b"\0" + files[name].read_bytes() + b"\0" for name in sorted(files)]
    return sha256(b"".join(parts))


def contents_version(data):
    """Short hash of the served contents: names the browser storage of this edition."""
    return digest(contents_files(data))[:12]


def storage_name(version):
    """Browser storage for readers' edits, one per edition of the contents.

    A new deploy with changed notebooks uses a new store, so readers see the new
    notebooks instead of stale copies; a deploy with the same contents keeps edits.
    """
    return f"microgpt-book-{version}"


def sources_digest(data):
    """Hash of every input of the build: when it changes, the site is stale."""
    files = contents_files(data)
    for p in sorted(LITE.glob("*")):
        if p.is_file() and p.suffix in {".py", ".json", ".html", ".css", ".js", ".mjs", ".svg"}:
            files[f"lite:{p.name}"] = p
    extra = f"{pyodide_version()} {sys.version_info[:2]}".encode()
    return sha256(digest(files).encode() + extra)


# --- a whole site, or none ----------------------------------------------------


def missing_files(site, contents=()):
    """What a working site must hold and `site` lacks: the landing page, the apps,
    the local Pyodide, and the contents (site-relative, as in contents_files)."""
    need = [f"{app}/index.html" for app in APPS]
    need += [f"static/pyodide/{name}" for name in PYODIDE_CORE + ["pyodide-lock.json"]]
    need += ["jupyter-lite.json", "index.html", PACKAGE_ZIP, *SITE_FILES]
    need += [f"files/{rel}" for rel in contents]
    return [rel for rel in need if not (site / rel).is_file()]


def manifest(site):
    """Size of every file of the site but build-info.json: what `is_fresh` checks."""
    return {
        p.relative_to(site).as_posix(): p.stat().st_size
        for p in sorted(site.rglob("*"))
        if p.is_file() and p.name != BUILD_INFO
    }


def is_fresh(output, data):
    """Built from these sources, and every file of that build still there, same size.

    Not just build-info.json: a partial or damaged site is never kept.
    """
    try:
        info = json.loads((output / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return False
    files = info.get("files")
    if not files or info.get("sources") != sources_digest(data):
        return False
    if missing_files(output, contents_files(data)):
        return False
    for rel, size in files.items():
        try:
            if (output / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def check_output(output):
    """Refuse an --output that holds something other than a site this script built:
    the old output is replaced whole."""
    if output.exists() and not output.is_dir():
        raise SystemExit(f"error: --output {output} is a file; give a folder for the site")
    if output.is_dir() and any(output.iterdir()) and not (output / BUILD_INFO).is_file():
        raise SystemExit(
            f"error: --output {output} is not empty and holds no site built by "
            f"lite/build_site.py (no {BUILD_INFO}); it would be replaced: pick another folder"
        )


def check_folders(output):
    """The folders the build writes, tried before it starts: --output's, and the cache."""
    try:
        check_output_folder(output, "--output")
        check_output_folder(
            CACHE,
            "MICROGPT_SITE_CACHE"
            if os.environ.get("MICROGPT_SITE_CACHE")
            else "the download cache",
        )
    except OutputPathError as e:
        print(f"error: {single_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None


def check_package():
    """The package imported here is the one the site ships (stage list, data checksum)."""
    imported = Path(microgpt.__file__).resolve().parent
    if imported != PACKAGE.resolve():
        raise SystemExit(
            f"error: this build imports microgpt from {imported}, not {PACKAGE}; "
            f'install this checkout (pip install -e ".[site]") or set PYTHONPATH={ROOT}'
        )


# --- Pyodide, served locally --------------------------------------------------


def stage_pyodide(version, dest):
    """Pyodide core, compiled boot wheels and snapshots in dest (see lite/pyodide_dist.py)."""
    return pyodide_dist.stage(version, dest, CACHE, cdn_url(version))


# --- the site ---------------------------------------------------------------


def notebook_title(path):
    """First markdown heading of a notebook, else its file name."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def cdn_cells():
    """Indices of the cells tagged needs-cdn (numpy/matplotlib), per chapter."""
    found = {}
    for path in chapters(BOOK):
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        tagged = [
            i for i, c in enumerate(cells) if "needs-cdn" in c.get("metadata", {}).get("tags", [])
        ]
        if tagged:
            found[path.name] = tagged
    return found


#: what the browser kernel reports when it starts: a chapter that already says so opens
#: unmodified (else JupyterLab rewrites both and asks to save on closing)
KERNEL_METADATA = {
    "kernelspec": {"name": "python", "display_name": "Python (Pyodide)", "language": "python"},
    "language_info": {
        "codemirror_mode": {"name": "python", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": "3.8",
    },
}
OFFLINE_OUTPUTS = "offline-outputs.json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STORED_WIDGET = "<p><em>(As stored with the book: run the cell to use it.)</em></p>"


def widget_html(models, model_id):
    """A stored widget as static HTML: its boxes' contents, HTML pieces and controls' values."""
    state = models.get(model_id, {}).get("state", {})
    if "children" in state:  # VBox, HBox
        return "".join(widget_html(models, c.removeprefix("IPY_MODEL_")) for c in state["children"])
    if state.get("_model_name") == "HTMLModel":
        return state.get("value", "")
    value = state.get("value")
    if "_options_labels" in state and state.get("index") is not None:  # menus store an index
        value = state["_options_labels"][state["index"]]
    if state.get("description") and value not in (None, ""):
        label, shown = html.escape(state["description"]), html.escape(str(value))
        return f"<p>{label}: <code>{shown}</code></p>"
    return ""


def static_widgets(nb):
    """Stored widget outputs as HTML, in place: JupyterLite never answers the widget
    manager's comm_info_request, so a stored widget would say "Loading widget..." forever;
    a widget made by running the cell works (ipywidgets is served by the site)."""
    stored = nb["metadata"].pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).pop(WIDGET_VIEW, None)
            if view is not None:
                output["data"]["text/html"] = widget_html(stored, view["model_id"]) + STORED_WIDGET


def source_key(source):
    """The key of a cell in offline-outputs.json (as lite/kernel_offline.py computes it)."""
    text = "".join(source) if isinstance(source, list) else source
    return sha256(text.rstrip().encode())


def present_chapter(nb):
    """A chapter as the site serves it, and the stored outputs of its needs-cdn cells.

    The cells and their outputs are the book's; what changes is how the browser shows
    them: the browser kernel's metadata (the chapter opens unmodified), trusted cells (their
    stored outputs render), no stored execution counts (a reader's runs count from 1,
    not among the book's 17s and 30s) and stored widgets as HTML (see static_widgets).
    The needs-cdn cells' outputs go to offline-outputs.json, for lite/kernel_offline.py.
    """
    nb["metadata"].update(json.loads(json.dumps(KERNEL_METADATA)))
    static_widgets(nb)
    offline = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["metadata"]["trusted"] = True
        cell["execution_count"] = None
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = None
        if "needs-cdn" in cell["metadata"].get("tags", []):
            offline[source_key(cell["source"])] = cell.get("outputs", [])
    return nb, offline


def present_chapters(contents_dir):
    """present_chapter for every chapter in contents_dir, in place; their offline outputs."""
    offline = {}
    for path in chapters(contents_dir):
        nb, cells = present_chapter(json.loads(path.read_text(encoding="utf-8")))
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        offline.update(cells)
    return offline


def pure_python_stages():
    """In-chain stages that need only the standard library, in pass order (fastest last)."""
    return [s.name for s in stages.STAGES if s.in_chain and not s.requires]


def train_code(stage):
    """Prefilled REPL code: train the fastest pure-Python stage and print names."""
    args = f'["--stage", "{stage}"]' if stage else "[]"
    return f"from microgpt.tools.cli import main\nmain({args})"


def stage_options(default):
    """The landing page's stage menu: the pure-Python stages (offline), then ONLINE_STAGES."""
    names = [(name, "") for name in pure_python_stages()]
    names += [(name, note) for name, note in ONLINE_STAGES.items() if name in stages.BY_NAME]
    return "\n".join(
        f'        <option value="{name}"{" selected" if name == default else ""}>'
        f"{name}{f' ({html.escape(note, quote=False)})' if note else ''}</option>"
        for name, note in names
    )


def package_zip():
    """The package's files (Python sources and package data) as a zip, in name order."""
    out = tempfile.SpooledTemporaryFile()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                info = zipfile.ZipInfo(path.relative_to(ROOT).as_posix(), (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    out.seek(0)
    return out.read()


def favicon_ico(size=32):
    """The site's icon (lite/favicon.svg drawn in pixels: a falling loss curve) as an .ico
    holding one PNG, for browsers that ask for /favicon.ico."""
    blue, white = (0x2A, 0x6F, 0xDB, 255), (255, 255, 255, 255)
    curve = [(5, 8), (10, 17), (15, 20), (21, 23), (27, 24)]

    def near_curve(x, y):
        for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
            t = max(0.0, min(1.0, ((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0))
                             / ((x1 - x0) ** 2 + (y1 - y0) ** 2)))  # fmt: skip
            if (x - x0 - t * (x1 - x0)) ** 2 + (y - y0 - t * (y1 - y0)) ** 2 <= 2.25:
                return True
        return False

    rows = b"".join(
        b"\0"
        + bytes(c for x in range(size) for c in (white if near_curve(x + 0.5, y + 0.5) else blue))
        for y in range(size)
    )

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
    png += chunk(b"IEND", b"")
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def landing_page(titles, version, stage, data_note):
    template = (LITE / "landing.html").read_text(encoding="utf-8")
    items = (
        "\n".join(
            f'      <li><a href="notebooks/index.html?path={urllib.parse.quote(name)}">'
            f"{html.escape(title)}</a> <small>(<a "
            f'href="lab/index.html?path={urllib.parse.quote(name)}">JupyterLab</a>)</small></li>'
            for name, title in titles
        )
        or "      <li>No chapters yet.</li>"
    )
    repl = f"{REPL_PAGE}?kernel=python&toolbar=1&code=" + urllib.parse.quote(train_code(stage))
    return (
        template.replace("{{CHAPTERS}}", items)
        .replace("{{TRAIN_URL}}", html.escape(repl))
        .replace("{{TRAIN_CODE}}", html.escape(train_code(stage)))
        .replace("{{STAGE_OPTIONS}}", stage_options(stage))
        .replace("{{VERSION}}", version)
        .replace("{{STORAGE}}", storage_name(version))
        .replace("{{DATA}}", html.escape(data_note))
    )


def build(data_arg=None, output=OUTPUT, force=False):
    """Build the site into output (replaced whole, only by a build that checked out).

    Paths are resolved here, against the caller's working directory.
    """
    started = time.monotonic()
    output = Path(output).resolve()
    check_package()
    check_folders(output)
    data, data_note = find_data(data_arg)
    log(data_note)
    if not force and is_fresh(output, data):
        log(f"up to date: {output}")
        return output
    check_output(output)
    version = pyodide_version()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=CACHE) as tmp:
        return _build(Path(tmp), data, data_note, version, output, started)


def _build(work, data, data_note, version, output, started):
    """The build proper, staged in work (unique per build, so builds never collide)."""
    sources = sources_digest(data)  # before copying: a later edit makes the build stale
    stage_dir = work / "lite"
    contents_dir = work / "contents"
    contents_dir.mkdir(parents=True)
    files = contents_files(data)
    for rel, src in files.items():
        (contents_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, contents_dir / rel)
    nchapters = len(chapters(BOOK))
    log(f"{nchapters} chapters, {len(files) - nchapters - 1} package files, input.txt")
    offline = present_chapters(contents_dir)

    pyodide = stage_pyodide(version, stage_dir / "static" / "pyodide")
    local, cdn = len(pyodide["local"]), pyodide["cdn"]
    log(f"pyodide {version}: {local} wheels served locally (bytecode), {cdn} on the CDN")

    cversion = digest(files)[:12]  # the sources: what contents_version(data) says
    config = json.loads((LITE / "jupyter-lite.json").read_text())
    config["jupyter-config-data"]["contentsStorageName"] = storage_name(cversion)
    (stage_dir / "jupyter-lite.json").write_text(json.dumps(config, indent=2))
    shutil.copy2(LITE / SETTINGS, stage_dir / SETTINGS)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(tempfile.mkdtemp(prefix=output.name + ".new-", dir=output.parent))
    try:
        _lite_build(stage_dir, contents_dir, tmp_out)
        set_kernel_settings(tmp_out / "jupyter-lite.json")
        set_app_settings(tmp_out)
        link_app_styles(tmp_out)
        stage = (pure_python_stages() or [None])[-1]
        titles = [(p.name, notebook_title(p)) for p in chapters(BOOK)]
        described = data_description(data)
        page = landing_page(titles, cversion, stage, described)
        write_atomic(tmp_out / "index.html", page.encode())
        for name in SITE_FILES:
            shutil.copy2(LITE / name, tmp_out / name)
        write_atomic(tmp_out / PACKAGE_ZIP, package_zip())
        write_atomic(tmp_out / OFFLINE_OUTPUTS, json.dumps(offline).encode())
        write_atomic(tmp_out / "favicon.ico", favicon_ico())
        missing = missing_files(tmp_out, files)
        if missing:  # e.g. jupyter lite wrote its app elsewhere, or nothing at all
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise SystemExit(
                f"error: the build made no working site (missing {', '.join(missing[:3])}{more});"
                f" jupyter lite's log: {CACHE / BUILD_LOG}"
            )
        info = {
            "sources": sources,
            "contents_version": cversion,
            "storage_name": storage_name(cversion),
            "pyodide": pyodide,
            "data": described,
            "chapters": [name for name, _ in titles],
            "needs_cdn_cells": cdn_cells(),
            "train_stage": stage,
            "train_code": train_code(stage),
            "files": manifest(tmp_out),
        }
        write_atomic(tmp_out / BUILD_INFO, json.dumps(info, indent=2).encode())
    except BaseException:
        shutil.rmtree(tmp_out, ignore_errors=True)
        raise
    old = Path(tempfile.mkdtemp(prefix=output.name + ".old-", dir=output.parent))
    if output.exists():
        os.replace(output, old / output.name)
    os.replace(tmp_out, output)
    shutil.rmtree(old, ignore_errors=True)
    size = sum(info["files"].values())
    log(f"built {output} ({size / 2**20:.1f} MiB) in {time.monotonic() - started:.1f} s")
    return output


def set_kernel_settings(path):
    """The kernel's Pyodide settings (KERNEL_SETTINGS), after `jupyter lite build`, whose
    Pyodide addon writes its own pyodideUrl."""
    if not path.is_file():
        return  # no app at all: the check of the finished site says so
    config = json.loads(path.read_text())
    plugins = config["jupyter-config-data"].setdefault("litePluginSettings", {})
    plugins.setdefault(KERNEL_PLUGIN, {}).update(KERNEL_SETTINGS)
    write_atomic(path, json.dumps(config, indent=2).encode())


#: per-app configuration added after the build: the REPL app (the landing page's console
#: link) has no notebooks, and this plugin, which wants their tracker, fails on every load
APP_CONFIG = {"repl": {"disabledExtensions": ["@jupyterlab/codemirror-extension:commands"]}}


def set_app_settings(site):
    for app, settings in APP_CONFIG.items():
        path = site / app / "jupyter-lite.json"
        if path.is_file():
            config = json.loads(path.read_text())
            config.setdefault("jupyter-config-data", {}).update(settings)
            write_atomic(path, json.dumps(config, indent=2).encode())


def link_app_styles(site):
    """Every app page links apps.css (the chapters on a phone), after JupyterLab's styles."""
    for app in APPS:
        page = site / app / "index.html"
        if page.is_file():
            text = page.read_text(encoding="utf-8")
            link = '<link rel="stylesheet" href="../apps.css">'
            if link not in text:
                write_atomic(page, text.replace("</head>", f"  {link}\n</head>", 1).encode())


def _lite_build(stage_dir, contents_dir, site):
    """`jupyter lite build` into site (absolute: it runs in stage_dir); its log goes to CACHE."""
    cmd = [sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", str(stage_dir),
           "--contents", str(contents_dir), "--output-dir", str(site), "--no-sourcemaps",
           "--no-unused-shared-packages"]  # fmt: skip
    for app in APPS:
        cmd += ["--apps", app]
    log("jupyter lite build")
    proc = run(cmd, cwd=stage_dir)
    write_atomic(CACHE / BUILD_LOG, (proc.stdout + proc.stderr).encode())


def main(argv=None):
    parser = ArgumentParser(prog="lite/build_site.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", help="names file to ship as input.txt (default: MICROGPT_DATA, then the cache)"
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT})"
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when the output is up to date"
    )
    args = parser.parse_args(argv)
    try:
        build(args.data, args.output, args.force)
    except KeyboardInterrupt:  # the temporary folders are removed on the way out
        print("build_site: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
