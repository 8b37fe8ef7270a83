"""The JupyterLite site: `make site` builds it, and every chapter runs in headless
Chromium with no network.

The site is built once per session by `make site`, as typed, in a fresh clone of
the working tree (so a stale lite/_output here can hide nothing), served on
127.0.0.1, and driven through Playwright with every non-loopback hostname
unresolvable.  Each chapter is run cell by cell, as a
reader would, and its stream outputs are compared with the CPython outputs
stored in the notebook.  Chromium or Playwright missing: the tests skip, unless
MICROGPT_REQUIRE_BROWSER=1 (CI), where they fail.
"""

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bench_browser  # lite/ is on pytest's pythonpath
import browser
import build_site
import pytest

from microgpt.book import chapters

ROOT = Path(__file__).resolve().parent.parent

REQUIRE_BROWSER = os.environ.get("MICROGPT_REQUIRE_BROWSER") == "1"
CHAPTER_BUDGET_S = float(os.environ.get("MICROGPT_SITE_CHAPTER_BUDGET_S", "180"))
CDN_TAG = "needs-cdn"
# a cell whose output differs in the browser by design: Python 3.14's own defaults (the
# recursion limit, the collector's thresholds), or what the kernel lacks (numba, numpy
# offline). It must still run there without an error; nbval compares it in CPython.
DIFFERS_TAG = "differs-in-browser"
REPORT = ROOT / "lite" / "_bench" / "site_report.json"


def _unavailable(reason):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (MICROGPT_REQUIRE_BROWSER=1 makes this a failure)")
    pytest.skip(reason)


def _check_tools(browser_needed):
    for module, fix in [("jupyterlite_core", "pip install -e '.[site]'"),
                        ("jupyterlite_pyodide_kernel", "pip install -e '.[site]'")]:  # fmt: skip
        if importlib.util.find_spec(module) is None:
            _unavailable(f"{module} is not installed; run: {fix}")
    for tool, fix in [("npm", "install Node.js and npm"), ("make", "install make"),
                      ("git", "install git")]:  # fmt: skip
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is not installed; {fix}")
    if browser_needed:
        if not Path(browser.CHROMIUM).exists():
            _unavailable(f"{browser.CHROMIUM} not found; run: apt-get install -y chromium")
        if importlib.util.find_spec("playwright") is None:
            _unavailable("playwright is not installed; run: pip install -e '.[site]'")


# --- fixtures ----------------------------------------------------------------


def fresh_clone(dest):
    """Copy what a commit of this working tree holds (tracked files, and untracked ones
    git does not ignore) to dest: CI's `git clone`, with the uncommitted edits."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    for rel in filter(None, listed.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the tree is not copied
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="session")
def made_site(tmp_path_factory):
    """`make site`, as typed, in a fresh clone: once per session, for every test here.

    The clone's build runs this interpreter (PY=; -o keeps make from reinstalling
    its venv), imports the clone's package (PYTHONPATH) and shares this tree's
    download cache (MICROGPT_SITE_CACHE), so only the first build ever downloads.
    """
    _check_tools(browser_needed=False)
    clone = fresh_clone(tmp_path_factory.mktemp("clone"))
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env.update(PYTHONPATH=str(clone), MICROGPT_SITE_CACHE=str(build_site.CACHE))
    made = subprocess.run(
        ["make", "site", f"PY={sys.executable}", "-o", ".venv/.installed"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    log = made.stdout + made.stderr
    if made.returncode:
        pytest.fail(f"make site failed in a fresh clone ({clone}):\n{log[-3000:]}")
    return SimpleNamespace(clone=clone, site=clone / "lite" / "_output", log=log, env=env)


@pytest.fixture(scope="session")
def site(made_site):
    """The folder `make site` wrote (the Makefile's default, lite/_output of the clone)."""
    return made_site.site


@pytest.fixture(scope="session")
def report(request):
    """Figures gathered by the browser tests, written to lite/_bench/site_report.json."""
    data = {"chapters": {}, "started": time.time()}
    yield data
    if not data["chapters"] and "train" not in data and "kernel" not in data:
        return
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    tmp = REPORT.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, REPORT)
    terminal = request.config.pluginmanager.getplugin("terminalreporter")
    if terminal:
        terminal.write_line("")
        terminal.write_line(f"site report ({REPORT.relative_to(ROOT)}):")
        for name, ch in data["chapters"].items():
            terminal.write_line(
                f"  {name}: open {ch['open_s']:.1f} s, cells {ch['run_s']:.1f} s, "
                f"{ch['compared']} outputs compared, {ch['cdn_failed']}/{ch['cdn_cells']} "
                f"{CDN_TAG} cells failed offline"
            )
        total = sum(ch["cdn_cells"] for ch in data["chapters"].values())
        terminal.write_line(f"  {CDN_TAG} cells in the book: {total}")
        if "kernel" in data:
            first = data["kernel"]["first_output_s"]
            terminal.write_line(f"  page load to first kernel output: {first:.1f} s")
        if "train" in data:
            stage, seconds = data["train"]["stage"], data["train"]["click_to_names_s"]
            terminal.write_line(f"  train link ({stage}): click to 20 names in {seconds:.1f} s")


@pytest.fixture(scope="session")
def served(site):
    overrides = {}
    with browser.serve(site, overrides=overrides) as url:
        yield url, overrides


@pytest.fixture(scope="session")
def playwright_driver(site):
    _check_tools(browser_needed=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def chromium(playwright_driver):
    """One browser profile for every chapter: the HTTP cache is shared, as for a reader."""
    with browser.browser_context(playwright_driver) as (context, requests):
        yield context, requests


# --- helpers -----------------------------------------------------------------


def load_sanitizers():
    """The book's nbval sanitizers (what differs between two runs), then the site's
    (what differs between CPython 3.11 and Pyodide's 3.14 in the last bits)."""
    rules = []
    for path in [ROOT / "book" / "sanitize.cfg", ROOT / "lite" / "sanitize_browser.cfg"]:
        if path.is_file():
            cfg = configparser.ConfigParser(interpolation=None)
            cfg.read(path, encoding="utf-8")
            rules += [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]
    return rules


def visible_lines(text):
    """Text as a terminal shows it: carriage returns overwrite, trailing blanks vanish.

    JupyterLab applies the carriage returns of a progress bar to the live output;
    the stored notebook may keep them or fold them with different padding.
    """
    lines = []
    for line in text.split("\n"):
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part) :]
        lines.append(shown.rstrip())
    return "\n".join(lines)


def sanitize(text, sanitizers):
    text = visible_lines(text)
    for pattern, replace in sanitizers:
        text = pattern.sub(replace, text)
    return text


def cell_flags(cell):
    """nbval markers (comments or tags) and our needs-cdn and differs-in-browser tags."""
    source = "".join(cell.get("source", ""))
    tags = {t.lower() for t in cell.get("metadata", {}).get("tags", [])}
    flags = set()
    if "# NBVAL_IGNORE_OUTPUT" in source or "nbval-ignore-output" in tags or DIFFERS_TAG in tags:
        flags.add("ignore")
    if "# NBVAL_SKIP" in source or "nbval-skip" in tags:
        flags.add("skip")
    if "# NBVAL_RAISES_EXCEPTION" in source or "raises-exception" in tags:
        flags.add("raises")
    if CDN_TAG in tags:
        flags.add("cdn")
    return flags


def first_difference(expected, actual):
    for i, (e, a) in enumerate(zip(expected.splitlines(), actual.splitlines())):
        if e != a:
            return f"line {i + 1}: expected {e!r}, got {a!r}"
    return f"expected {len(expected.splitlines())} lines, got {len(actual.splitlines())}"


def cdn_request(url):
    return url.startswith(build_site.cdn_url(build_site.pyodide_version()))


# --- tests -------------------------------------------------------------------

CHAPTERS = chapters(ROOT / "book")


def test_make_site_builds_a_whole_site_in_a_fresh_clone(made_site):
    """The folder `make site` names holds the app, the local Pyodide, every chapter, the
    package and the names (a relative --output once left only a 0.0 MiB landing page)."""
    clone, site = made_site.clone, made_site.site
    assert f"[site] built {site.resolve()}" in made_site.log, made_site.log[-2000:]
    assert (site / "lab" / "index.html").is_file()
    assert (site / "static" / "pyodide" / "pyodide.asm.wasm").stat().st_size > 2**20
    book = chapters(clone / "book")
    assert [p.name for p in book] == [p.name for p in CHAPTERS]
    for chapter in book:
        assert (site / "files" / chapter.name).read_bytes() == chapter.read_bytes(), chapter.name
    package = [p for p in (clone / "microgpt").rglob("*.py") if "__pycache__" not in p.parts]
    assert clone / "microgpt" / "__init__.py" in package
    for path in package:
        shipped = site / "files" / path.relative_to(clone)
        assert shipped.read_bytes() == path.read_bytes(), f"{shipped} differs from {path}"
    data, _ = build_site.find_data(None)
    assert (site / "files" / "input.txt").read_bytes() == data.read_bytes()
    info = json.loads((site / build_site.BUILD_INFO).read_text())
    assert info["chapters"] == [p.name for p in book]


def test_relative_output_from_elsewhere_and_no_partial_site_kept(made_site, tmp_path):
    """A relative --output is relative to the caller's directory; a site that holds only
    build-info.json and index.html (what the relative-path bug left) is rebuilt, not kept."""
    script = made_site.clone / "lite" / "build_site.py"
    elsewhere = tmp_path / "elsewhere"
    partial = elsewhere / "rel" / "site"
    partial.mkdir(parents=True)
    shutil.copy(made_site.site / build_site.BUILD_INFO, partial)  # sources match: "fresh"
    shutil.copy(made_site.site / "index.html", partial)
    cmd = [sys.executable, str(script), "--output", "rel/site"]

    def build():
        proc = subprocess.run(
            cmd, cwd=elsewhere, env=made_site.env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout

    assert f"[site] built {partial.resolve()}" in build()
    assert not build_site.missing_files(partial)
    assert (partial / "files" / CHAPTERS[0].name).is_file()
    assert f"up to date: {partial.resolve()}" in build()


def test_up_to_date_means_every_file_is_still_there(tmp_path, monkeypatch):
    """The shortcut keeps a site only when every file it was built with is there, same size."""
    site = tmp_path / "site"
    for rel in build_site.missing_files(site, ["a.ipynb"]):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(rel)
    monkeypatch.setattr(build_site, "sources_digest", lambda data: "sources")
    monkeypatch.setattr(build_site, "contents_files", lambda data: {"a.ipynb": data})
    info = site / build_site.BUILD_INFO
    info.write_text(json.dumps({"sources": "sources", "files": build_site.manifest(site)}))
    assert build_site.is_fresh(site, None)
    wasm = site / "static" / "pyodide" / "pyodide.asm.wasm"
    wasm.write_text("")  # truncated
    assert not build_site.is_fresh(site, None)
    wasm.unlink()
    info.write_text(json.dumps({"sources": "sources", "files": build_site.manifest(site)}))
    assert not build_site.is_fresh(site, None), "a site without Pyodide was kept"
    wasm.write_text("static/pyodide/pyodide.asm.wasm")
    assert build_site.is_fresh(site, None)
    info.write_text(json.dumps({"sources": "sources"}))  # no file list: an older builder's
    assert not build_site.is_fresh(site, None)


def test_a_build_without_the_app_fails_in_one_line(site, tmp_path, monkeypatch, capsys):
    """When jupyter lite writes no app (as when it wrote it inside the staging folder), the
    build stops with a one-line error, reports nothing built and leaves no output."""
    monkeypatch.setattr(build_site, "_lite_build", lambda stage_dir, contents_dir, out: None)
    output = tmp_path / "site"
    with pytest.raises(SystemExit) as failed:
        build_site.build(output=output, force=True)
    message = str(failed.value.code)
    assert message.startswith("error: the build made no working site (missing lab/index.html,")
    assert "\n" not in message
    assert "[site] built" not in capsys.readouterr().out
    assert not output.exists()
    assert not list(tmp_path.iterdir()), "the build left its temporary output behind"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_in_browser(chapter, site, served, chromium, report):
    """Every cell runs offline; stream outputs equal the stored CPython ones."""
    shipped = json.loads((site / build_site.BUILD_INFO).read_text())["data"]
    if not shipped.startswith("makemore's"):
        _unavailable(f"the site ships {shipped}; stored outputs need it: set MICROGPT_DATA")
    url, _ = served
    context, requests = chromium
    stored = [c for c in browser.load_notebook(chapter)["cells"]]
    sanitizers = load_sanitizers()
    seen_before = len(requests.seen)
    requests.phase = chapter.name
    nb = browser.Notebook(context, url, chapter.name)
    problems = []
    figures = {"open_s": nb.open_s, "cells": [], "compared": 0, "cdn_cells": 0, "cdn_failed": 0}
    started = time.monotonic()
    try:
        live = nb.cells()
        assert [c["source"] for c in live] == ["".join(c["source"]) for c in stored], (
            f"{chapter.name}: the site serves a different notebook than book/; rebuild the site"
        )
        for index, cell in enumerate(stored):
            if cell["cell_type"] != "code":
                continue
            flags = cell_flags(cell)
            if "skip" in flags:
                continue
            figures["cdn_cells"] += "cdn" in flags
            left = CHAPTER_BUDGET_S - (time.monotonic() - started)
            if left <= 0:
                problems.append(f"over the {CHAPTER_BUDGET_S:.0f} s budget before cell {index}")
                break
            requests.phase = f"{chapter.name}#{index}" + (":cdn" if "cdn" in flags else "")
            result = nb.run_cell(index, timeout_s=left)
            figures["cells"].append({"index": index, "ms": round(result["ms"])})
            if result.get("error"):
                problems.append(f"cell {index} could not be run: {result['error']}")
            if result["fatal"]:
                problems.append(f"cell {index} crashed the kernel: {result['fatal']}")
                break
            if result["timedOut"]:
                problems.append(
                    f"cell {index} still running at the {CHAPTER_BUDGET_S:.0f} s budget"
                )
                break
            outputs = result["cell"].get("outputs", [])
            errs = browser.errors(outputs)
            if result["cell"].get("execution_count") is None and not errs:
                problems.append(f"cell {index} did not run")
            if "cdn" in flags:  # may fail or differ offline (numpy/matplotlib): counted only
                figures["cdn_failed"] += bool(errs)
                continue
            if errs and "raises" not in flags:
                problems.append(f"cell {index} raised {errs[0]}")
                continue
            if "ignore" in flags:
                continue
            for stream in ("stdout", "stderr"):
                expected = sanitize(
                    browser.stream_text(cell.get("outputs", []), stream), sanitizers
                )
                actual = sanitize(browser.stream_text(outputs, stream), sanitizers)
                if expected != actual:
                    diff = first_difference(expected, actual)
                    problems.append(f"cell {index} {stream} differs from CPython: {diff}")
            figures["compared"] += 1
    finally:
        figures["run_s"] = time.monotonic() - started
        report["chapters"][chapter.stem] = figures
        nb.close()
    leaks = [
        (u, p)
        for u, p in requests.seen[seen_before:]
        if not browser.is_loopback(u) and not (p.endswith(":cdn") and cdn_request(u))
    ]
    figures["cdn_requests"] = sum(
        1 for u, _ in requests.seen[seen_before:] if not browser.is_loopback(u)
    ) - len(leaks)
    assert not leaks, f"{chapter.name}: requests left loopback: {leaks[:5]}"
    assert not problems, f"{chapter.name}: " + "; ".join(problems)


def test_train_link_in_browser(site, served, chromium, report):
    """The landing page's one-click training prints what CPython prints for the same code."""
    url, _ = served
    context, requests = chromium
    info = json.loads((site / build_site.BUILD_INFO).read_text())
    seen_before = len(requests.seen)
    requests.phase = "train"
    page = context.new_page()
    try:
        page.goto(url)
        titles = page.locator("#chapters a").all_inner_texts()
        assert len([t for t in titles if t != "JupyterLab"]) == len(CHAPTERS)
        started = time.monotonic()
        page.click("#train")
        page.wait_for_function("() => window.jupyterapp !== undefined")
        output = page.evaluate(JS_CONSOLE_OUTPUT, 300_000)
        browser_s = time.monotonic() - started
    finally:
        page.close()
    assert not output["error"], f"training in the browser failed: {output['error']}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MICROGPT_DATA", None)
    cpython = subprocess.run(  # the same code, in the site's contents folder, as the kernel runs it
        [sys.executable, "-c", info["train_code"]],
        capture_output=True, text=True, cwd=site / "files", env=env, timeout=600,
    )  # fmt: skip
    assert cpython.returncode == 0, cpython.stderr[-2000:]
    assert "sample 20:" in output["text"]
    assert output["text"] == cpython.stdout
    report["train"] = {"stage": info["train_stage"], "click_to_names_s": browser_s}
    assert not [u for u, _ in requests.seen[seen_before:] if not browser.is_loopback(u)]


JS_CONSOLE_OUTPUT = """async (timeoutMs) => {
  // The REPL runs its prefilled code on load; wait for that cell to finish.
  const app = window.jupyterapp;
  await app.restored;
  const t0 = performance.now();
  let panel = null;
  while (performance.now() - t0 < timeoutMs) {
    panel = app.shell.currentWidget;
    if (panel && panel.console && panel.console.cells.length > 0) {
      const cell = panel.console.cells.get(0).model.toJSON();
      const busy = panel.sessionContext.session?.kernel?.status === 'busy';
      if (cell.execution_count != null && !busy) {
        const text = cell.outputs.filter((o) => o.output_type === 'stream' && o.name === 'stdout')
          .map((o) => Array.isArray(o.text) ? o.text.join('') : o.text).join('');
        const err = cell.outputs.filter((o) => o.output_type === 'error')
          .map((o) => o.ename + ': ' + o.evalue);
        return {text, error: err.join('; ')};
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {text: '', error: 'no output within the timeout'};
}"""


def test_contents_version_follows_contents(site, tmp_path, monkeypatch):
    """Readers' edits are stored per edition: the store is named after the contents.

    Same contents, same store (edits survive a redeploy); any changed notebook,
    package file or dataset gives a new store, so nobody sees a stale notebook.
    """
    data, _ = build_site.find_data(None)
    config = json.loads((site / "jupyter-lite.json").read_text())["jupyter-config-data"]
    assert config["contentsStorageName"] == build_site.storage_name(
        build_site.contents_version(data)
    ), "the built site is not named after its contents; rebuild it"
    book = tmp_path / "book"
    book.mkdir()
    chapter = CHAPTERS[0] if CHAPTERS else None
    if chapter is None:
        pytest.skip("no chapter in book/ yet")
    shutil.copy(chapter, book / chapter.name)
    monkeypatch.setattr(build_site, "BOOK", book)
    before = build_site.contents_version(data)
    assert build_site.contents_version(data) == before
    nb = json.loads((book / chapter.name).read_text())
    nb["cells"][0]["source"] = "# changed\n"
    (book / chapter.name).write_text(json.dumps(nb))
    assert build_site.contents_version(data) != before


JS_EDIT_AND_SAVE = """async (text) => {
  const widget = window.__nb;
  widget.content.model.cells.get(0).sharedModel.setSource(text);
  await widget.context.save();
}"""


def test_stale_notebooks_in_browser(site, served, playwright_driver):
    """In a real browser: an edit survives a reload; a new edition shows the published
    notebook; the old edition's edit is still there; the landing page's reset clears it."""
    if not CHAPTERS:
        pytest.skip("no chapter in book/ yet")
    url, overrides = served
    name = CHAPTERS[0].name
    published = "".join(browser.load_notebook(CHAPTERS[0])["cells"][0]["source"])
    edit = "# a reader's edit\n"
    config = json.loads((site / "jupyter-lite.json").read_text())
    config["jupyter-config-data"]["contentsStorageName"] = build_site.storage_name("next-edition")
    new_edition = json.dumps(config).encode()

    def first_cell():
        nb = browser.Notebook(context, url, name)
        try:
            return nb.cells()[0]["source"]
        finally:
            nb.close()

    with browser.browser_context(playwright_driver) as (context, requests):
        try:
            nb = browser.Notebook(context, url, name)
            assert nb.cells()[0]["source"] == published
            nb.page.evaluate(JS_EDIT_AND_SAVE, edit)
            nb.close()
            assert first_cell() == edit, "an edit did not survive a reload"
            overrides["/jupyter-lite.json"] = new_edition
            assert first_cell() == published, "a new edition shows a stale notebook"
            overrides.clear()
            assert first_cell() == edit, "the old edition lost the reader's edit"
            page = context.new_page()
            page.goto(url)
            page.click("#reset")
            page.wait_for_function(
                "() => document.getElementById('reset-status').textContent.length > 0"
            )
            status = page.locator("#reset-status").inner_text()
            page.close()
            assert status.startswith("Done"), status
            assert first_cell() == published, "reset did not restore the published notebook"
        finally:
            overrides.clear()
        assert not requests.outside_loopback()


def test_browser_benchmark_runs(site, playwright_driver, tmp_path, report):
    """The browser benchmark works end to end (few steps; `make bench-browser` for figures)."""
    out = tmp_path / "bench.json"
    result = bench_browser.run(
        steps=3, repeat=1, output=out, playwright=playwright_driver, site=site
    )
    assert json.loads(out.read_text()) == result
    names = [row["name"] for row in result["stages"]]
    assert names == [n for n in build_site.pure_python_stages() if n != "threads"]
    for row in result["stages"]:
        assert row["browser_ms_per_step"] > 0 and row["cpython_ms_per_step"] > 0, row
    assert not result["requests_outside_loopback"]
    report["kernel"] = result["kernel"]
