"""The JupyterLite site: every chapter runs in headless Chromium with no network.

The site is built once per session (reused when lite/_output is up to date with
its sources), served on 127.0.0.1, and driven through Playwright with every
non-loopback hostname unresolvable.  Each chapter is run cell by cell, as a
reader would, and its stream outputs are compared with the CPython outputs
stored in the notebook.  Chromium or Playwright missing: the tests skip, unless
MICROGPT_REQUIRE_BROWSER=1 (CI), where they fail.
"""

from __future__ import annotations

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

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lite"))
import browser  # noqa: E402
import build_site  # noqa: E402

REQUIRE_BROWSER = os.environ.get("MICROGPT_REQUIRE_BROWSER") == "1"
CHAPTER_BUDGET_S = float(os.environ.get("MICROGPT_SITE_CHAPTER_BUDGET_S", "180"))
CDN_TAG = "needs-cdn"
REPORT = ROOT / "lite" / "_bench" / "site_report.json"


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (MICROGPT_REQUIRE_BROWSER=1 makes this a failure)")
    pytest.skip(reason)


def _check_tools(browser_needed: bool) -> None:
    for module, fix in [("jupyterlite_core", "pip install -e '.[site]'"),
                        ("jupyterlite_pyodide_kernel", "pip install -e '.[site]'")]:  # fmt: skip
        if importlib.util.find_spec(module) is None:
            _unavailable(f"{module} is not installed; run: {fix}")
    if shutil.which("npm") is None:
        _unavailable("npm is not installed; install Node.js and npm")
    if browser_needed:
        if not Path(browser.CHROMIUM).exists():
            _unavailable(f"{browser.CHROMIUM} not found; run: apt-get install -y chromium")
        if importlib.util.find_spec("playwright") is None:
            _unavailable("playwright is not installed; run: pip install -e '.[site]'")


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site (rebuilt when any source changed)."""
    _check_tools(browser_needed=False)
    return build_site.build()


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
    overrides: dict[str, bytes] = {}
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


def load_sanitizers() -> list[tuple[re.Pattern, str]]:
    """The book's nbval sanitizers (what differs between two runs), then the site's
    (what differs between CPython 3.11 and Pyodide's 3.14 in the last bits)."""
    rules = []
    for path in [ROOT / "book" / "sanitize.cfg", ROOT / "lite" / "sanitize_browser.cfg"]:
        if path.is_file():
            cfg = configparser.ConfigParser(interpolation=None)
            cfg.read(path, encoding="utf-8")
            rules += [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]
    return rules


def visible_lines(text: str) -> str:
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


def sanitize(text: str, sanitizers) -> str:
    text = visible_lines(text)
    for pattern, replace in sanitizers:
        text = pattern.sub(replace, text)
    return text


def cell_flags(cell: dict) -> set[str]:
    """nbval markers (comments or tags) and our needs-cdn tag, lower-cased."""
    source = "".join(cell.get("source", ""))
    tags = {t.lower() for t in cell.get("metadata", {}).get("tags", [])}
    flags = set()
    if "# NBVAL_IGNORE_OUTPUT" in source or "nbval-ignore-output" in tags:
        flags.add("ignore")
    if "# NBVAL_SKIP" in source or "nbval-skip" in tags:
        flags.add("skip")
    if "# NBVAL_RAISES_EXCEPTION" in source or "raises-exception" in tags:
        flags.add("raises")
    if CDN_TAG in tags:
        flags.add("cdn")
    return flags


def first_difference(expected: str, actual: str) -> str:
    for i, (e, a) in enumerate(zip(expected.splitlines(), actual.splitlines())):
        if e != a:
            return f"line {i + 1}: expected {e!r}, got {a!r}"
    return f"expected {len(expected.splitlines())} lines, got {len(actual.splitlines())}"


def cdn_request(url: str) -> bool:
    return url.startswith(build_site.cdn_url(build_site.pyodide_version()))


# --- tests -------------------------------------------------------------------

CHAPTERS = build_site.chapters()


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
    problems: list[str] = []
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

    def first_cell() -> str:
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
    import bench_browser

    out = tmp_path / "bench.json"
    result = bench_browser.run(steps=3, repeat=1, output=out, playwright=playwright_driver)
    assert json.loads(out.read_text()) == result
    names = [row["name"] for row in result["stages"]]
    assert names == [n for n in build_site.pure_python_stages() if n != "threads"]
    for row in result["stages"]:
        assert row["browser_ms_per_step"] > 0 and row["cpython_ms_per_step"] > 0, row
    assert not result["requests_outside_loopback"]
    report["kernel"] = result["kernel"]
