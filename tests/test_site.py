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
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import urllib.parse
import zipfile
from pathlib import Path
from types import SimpleNamespace

import bench_browser  # lite/ is on pytest's pythonpath
import bench_engines
import browser
import build_site
import engines
import pytest
import screenshots

from microgpt.book import chapters
from microgpt.book.breakdown import recorded_collector

ROOT = Path(__file__).resolve().parent.parent

REQUIRE_BROWSER = os.environ.get("MICROGPT_REQUIRE_BROWSER") == "1"
# a guard against a hung kernel, not a speed check: a chapter on a loaded 2-core machine
# may take several minutes in Pyodide
CHAPTER_BUDGET_S = float(os.environ.get("MICROGPT_SITE_CHAPTER_BUDGET_S", "420"))
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
    if not data["chapters"] and not {"train", "kernel", "landing"} & set(data):
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
                f"{ch['compared']} outputs compared, {ch['cdn_noted']}/{ch['cdn_cells']} "
                f"{CDN_TAG} cells showed the offline note"
            )
        total = sum(ch["cdn_cells"] for ch in data["chapters"].values())
        terminal.write_line(f"  {CDN_TAG} cells in the book: {total}")
        if "kernel" in data:
            first = data["kernel"]["first_output_s"]
            terminal.write_line(f"  page load to first kernel output: {first:.1f} s")
        if "train" in data:
            stage, seconds = data["train"]["stage"], data["train"]["click_to_names_s"]
            terminal.write_line(f"  console link ({stage}): click to 20 names in {seconds:.1f} s")
        for engine, figures in data.get("landing", {}).items():
            terminal.write_line(
                f"  landing page, {engine}: first loss {figures['click_to_first_loss_s']:.1f} s, "
                f"20 names {figures['click_to_names_s']:.1f} s after the click"
            )


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
        served = json.loads((site / "files" / chapter.name).read_text(encoding="utf-8"))
        presented, _ = build_site.present_chapter(json.loads(chapter.read_text(encoding="utf-8")))
        assert served == presented, f"{chapter.name} is not the book's chapter, presented"
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
    figures = {"open_s": nb.open_s, "cells": [], "compared": 0, "cdn_cells": 0, "cdn_noted": 0}
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
            if "cdn" in flags:  # offline: a one-line note and the stored outputs, no error
                if errs:
                    problems.append(f"cell {index} ({CDN_TAG}) raised {errs[0]} offline")
                noted = "needs numpy/matplotlib" in browser.stream_text(outputs, "stderr")
                figures["cdn_noted"] += noted
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


REFERENCE = ROOT / "tests" / "reference" / "baseline_1000_steps.txt"
TRAINED = """async () => {
  const run = window.microgptRun;
  if (!run || run.state === 'running') return null;
  return {state: run.state, error: run.error, losses: run.losses, names: run.names,
          drawn: Number(document.getElementById('loss').dataset.steps),
          items: [...document.querySelectorAll('#names li')].map((li) => li.textContent),
          status: document.getElementById('status').textContent, timings: run.timings};
}"""
CLICK_TRAIN = "async () => { document.getElementById('train').click(); }"


def reference_run():
    """microgpt's 1000 losses (as printed, 4 decimals) and 20 names, from tests/reference."""
    text = REFERENCE.read_text()
    losses = re.findall(r"^step +\d+ / 1000 \| loss (\d\.\d{4})$", text, re.M)
    names = re.findall(r"^sample +\d+: (.*)$", text, re.M)
    return losses, names


@pytest.fixture(scope="session")
def cpython_run(site):
    """The landing page's default run (flat, 1000 steps, seed 42), in CPython on the site's
    names: every loss and the 20 names at temperature 0.5."""
    from microgpt import Run, stages
    from microgpt.data import read_names

    run = Run(read_names(site / "files" / "input.txt"), stages.load("flat"), seed=42)
    losses = [loss for _, loss in run.train(1000)]
    return losses, run.sample(20, temperature=0.5)


def engine_session(engine, playwright_driver, **options):
    """A fresh profile of `engine`; a browser that is not installed skips (fails in CI)."""
    reason = engines.missing(engine)
    if reason:
        _unavailable(f"{engine}: {reason}")
    return engines.open_session(engine, playwright_driver if engine == "chromium" else None,
                                **options)  # fmt: skip


def page_errors(session):
    """Console errors and uncaught exceptions (the page and, in Chromium, its workers)."""
    return [
        line
        for line in session.console()
        if line.startswith(("error", "pageerror", "worker error"))
    ]


@pytest.mark.parametrize("engine", engines.ENGINES)
def test_landing_page_trains_like_cpython(engine, site, served, playwright_driver, cpython_run,
                                          report):  # fmt: skip
    """Train on the landing page, defaults, offline: the curve draws all 1000 steps, the list
    shows microgpt's 20 names, and every loss is CPython's for the same run."""
    url, _ = served
    with engine_session(engine, playwright_driver) as session:
        session.goto(url)
        started = time.monotonic()
        session.run(CLICK_TRAIN)
        result, _ = session.wait_for(TRAINED, timeout_s=600, interval_s=0.2)
        seconds = time.monotonic() - started
        errors = page_errors(session)
        outside = session.outside()
    assert result["state"] == "done", result["error"] or result["status"]
    losses, names = cpython_run
    printed, reference_names = reference_run()
    assert result["names"] == names == reference_names
    assert result["items"] == names, "the list does not show the names sampled"
    assert result["drawn"] == len(result["losses"]) == 1000
    worst = max(abs(a - b) for a, b in zip(result["losses"], losses))
    assert worst <= 1e-12, f"a loss differs from CPython's by {worst:.3g}"
    assert [f"{loss:.4f}" for loss in result["losses"]] == printed
    assert not errors, errors
    assert not outside, f"requests left loopback: {outside[:5]}"
    report.setdefault("landing", {})[engine] = {
        "click_to_first_loss_s": result["timings"]["firstLoss"] / 1000,
        "click_to_names_s": seconds,
    }


def test_landing_page_stops_trains_again_and_explains_offline_numpy(site, served,
                                                                  playwright_driver):  # fmt: skip
    """Stop ends a run early; a second run draws the first one's curve beside its own; the
    tensor stage, offline, says in one line that it needs the network; 0 steps starts
    nothing (the browser says what the field takes)."""
    url, _ = served
    with engine_session("chromium", playwright_driver) as session:
        session.goto(url)
        session.run("async () => { document.getElementById('steps').value = '3000'; }")
        session.run(CLICK_TRAIN)
        session.wait_for("async () => window.microgptRun.losses.length >= 20", timeout_s=300)
        session.run("async () => { document.getElementById('stop').click(); }")
        stopped, _ = session.wait_for(TRAINED, timeout_s=120)
        assert stopped["state"] == "stopped"
        assert 20 <= stopped["drawn"] < 3000 and stopped["items"] == []
        assert stopped["status"].startswith(f"Stopped after {stopped['drawn']} steps")

        session.run("async () => { document.getElementById('steps').value = '30'; }")
        session.run(CLICK_TRAIN)
        again, _ = session.wait_for(TRAINED, timeout_s=300)
        assert again["state"] == "done" and again["drawn"] == 30 and len(again["items"]) == 20
        assert session.run("async () => document.querySelectorAll('#loss .previous').length") == 1

        session.run("async () => { document.getElementById('stage').value = 'tensor'; }")
        session.run(CLICK_TRAIN)
        offline, _ = session.wait_for(TRAINED, timeout_s=300)
        assert offline["state"] == "error"
        assert "needs numpy, which loads from Pyodide's CDN" in offline["status"]

        session.run("async () => { document.getElementById('steps').value = '0'; }")
        session.run("async () => { document.getElementById('controls').requestSubmit(); }")
        refused = session.run(
            "async () => [document.getElementById('steps').validationMessage,"
            " window.microgptRun.state]"
        )
        assert refused[0] and refused[1] == "error", "0 steps started a run"
        errors = [e for e in page_errors(session) if "net::ERR" not in e]  # the CDN, offline
    assert not errors, errors


def test_console_link_prints_what_cpython_prints(site, served, chromium, report):
    """The landing page's "see the code" link: the REPL runs the shown code and prints
    exactly what CPython prints for it (1000 steps of flat, 20 names)."""
    url, _ = served
    context, requests = chromium
    info = json.loads((site / build_site.BUILD_INFO).read_text())
    seen_before = len(requests.seen)
    requests.phase = "console"
    page = context.new_page()
    try:
        page.goto(url)
        titles = page.locator("#chapters a").all_inner_texts()
        assert len([t for t in titles if t != "JupyterLab"]) == len(CHAPTERS)
        started = time.monotonic()
        page.click("#console")
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
    panel = [...app.shell.widgets('main')].find((w) => w.console);
    if (panel && panel.console.cells.length > 0) {
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
# Run All on the open chapter, as a reader would (the Notebook app's Run menu); resolves
# when the last code cell has run, with every code cell's outputs and the page's state
RUN_ALL = """async (path) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  while (!window.jupyterapp) await sleep(50);
  const app = window.jupyterapp;
  await app.restored;
  const find = () => [...app.shell.widgets('main')].find(
    (w) => w.sessionContext && w.context && w.context.path === path);
  let widget = find();
  while (!widget) { await sleep(50); widget = find(); }
  await widget.context.ready;
  await widget.sessionContext.ready;
  const cells = widget.content.model.cells;
  const code = [];
  for (let i = 0; i < cells.length; i++) if (cells.get(i).type === 'code') code.push(i);
  const trusted = code.every((i) => cells.get(i).trusted);
  const dirtyBefore = widget.context.model.dirty;
  widget.content.activeCellIndex = 0;
  await app.commands.execute('notebook:run-all-cells');
  const last = cells.get(code[code.length - 1]);
  while (last.executionCount == null || widget.sessionContext.session.kernel.status !== 'idle') {
    await sleep(200);
  }
  const outputs = code.map((i) => ({index: i, count: cells.get(i).executionCount,
                                    outputs: cells.get(i).toJSON().outputs}));
  return {outputs, trusted, dirtyBefore, counts: code.map((i) => cells.get(i).executionCount)};
}"""


@pytest.mark.parametrize("engine", engines.ENGINES)
def test_run_all_offline_in_every_engine(engine, site, served, playwright_driver):
    """Chapter 1, opened as the landing page opens it, Run All, offline: trusted, unmodified
    when opened, counted from 1, every cell run; the matplotlib cell says it needs the
    network and shows the book's figure; the other outputs are CPython's."""
    chapter = ROOT / "book" / "01_data.ipynb"
    url, _ = served
    stored = {i: c for i, c in enumerate(browser.load_notebook(chapter)["cells"])}
    sanitizers = load_sanitizers()
    with engine_session(engine, playwright_driver) as session:
        session.goto(f"{url}notebooks/index.html?path={chapter.name}")
        result = session.run(RUN_ALL, chapter.name, timeout_s=600)
        errors = page_errors(session)
        outside = session.outside()
    assert result["trusted"] and not result["dirtyBefore"]
    assert result["counts"] == list(range(1, len(result["counts"]) + 1))
    for cell in result["outputs"]:
        book = stored[cell["index"]]
        flags = cell_flags(book)
        assert not browser.errors(cell["outputs"]) or "raises" in flags, (cell["index"], cell)
        if "cdn" in flags:
            note = browser.stream_text(cell["outputs"], "stderr")
            assert "offline:" in note and "needs numpy/matplotlib" in note, note
            shown = [o["data"] for o in cell["outputs"] if o["output_type"] == "display_data"]
            kept = [o["data"] for o in book["outputs"] if o["output_type"] == "display_data"]
            assert [d["image/png"] for d in shown] == [d["image/png"] for d in kept]
            continue
        if "ignore" in flags:
            continue
        for stream in ("stdout", "stderr"):
            expected = sanitize(browser.stream_text(book.get("outputs", []), stream), sanitizers)
            actual = sanitize(browser.stream_text(cell["outputs"], stream), sanitizers)
            assert expected == actual, f"cell {cell['index']}: {first_difference(expected, actual)}"
    assert not errors, errors
    cdn_host = urllib.parse.urlsplit(build_site.cdn_url(build_site.pyodide_version())).hostname
    elsewhere = [u for u in outside if cdn_host not in u]  # the matplotlib cell tries the CDN
    assert not elsewhere, elsewhere[:5]


# In node (boot.mjs as the site serves it, Python started without a snapshot): 20 PyProxies
# become garbage, and their cleanups are run (cleanupSome) from Python's stdout handler, which
# CPython calls from a write with the GIL released; then, a moment later, how many are alive.
CLEANUP_WITHOUT_GIL = """
const { startPython } = await import(process.argv[2]);
const pyodide = await startPython(null, { indexURL: process.argv[3] });
pyodide.runPython(`
import weakref
refs = []
class Freed:
    def __init__(self):
        refs.append(weakref.ref(self))
`);
const alive = () => pyodide.runPython("sum(r() is not None for r in refs)");
for (let i = 0; i < 20; i++) pyodide.runPython("Freed()"); // each a PyProxy, dropped
globalThis.gc();
const registry = pyodide._module.finalizationRegistry;
const seen = { gilInWrite: null, error: null };
pyodide.setStdout({
  write(buffer) {
    seen.gilInWrite = pyodide._module._PyGILState_Check();
    try {
      registry.cleanupSome();
    } catch (err) {
      seen.error = String(err);
    }
    return buffer.length;
  },
});
pyodide.runPython("print('cleanup', flush=True)");
seen.aliveAfterWrite = alive();
await new Promise((resolve) => setTimeout(resolve, 200));
seen.aliveLater = alive();
console.log(JSON.stringify(seen));
"""


def test_pyproxy_cleanup_without_the_gil_waits_for_it(site, tmp_path):
    """A PyProxy's cleanup that the engine runs while Python has released the GIL waits for
    the GIL, then frees the object: no NoGilError. WebKitGTK runs such cleanups inside a
    synchronous XMLHttpRequest, which the kernel's file system (/drive) makes from inside
    Python's system calls; here node runs them from inside a write to stdout."""
    script = tmp_path / "cleanup.mjs"
    script.write_text(CLEANUP_WITHOUT_GIL)
    pyodide = site / "static" / "pyodide"
    proc = subprocess.run(
        ["node", "--expose-gc", "--harmony-weak-refs-with-cleanup-some", str(script),
         (pyodide / "boot.mjs").as_uri(), f"{pyodide}/"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["gilInWrite"] == 0, "the cleanup did not run where the GIL is released"
    assert seen["error"] is None, seen["error"]
    assert seen["aliveAfterWrite"] == 20, "a cleanup ran without the GIL"
    assert seen["aliveLater"] == 0, "the cleanups did not run once Python held the GIL"


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


def test_make_bench_browser_runs_as_documented(made_site):
    """`make bench-browser` with arguments passed through make, in the fresh clone (its site
    is up to date): one cold load in Chromium, then `flat` for 3 steps in both Pythons."""
    done = subprocess.run(
        ["make", "bench-browser", f"PY={sys.executable}", "-o", ".venv/.installed",
         "-o", "lite/node_modules/.package-lock.json",  # puppeteer-core: Firefox only
         "ENGINE_ARGS=--engines chromium --rounds 1",
         "BENCH_ARGS=--stages flat --steps 3 --repeat 1"],
        cwd=made_site.clone, env=made_site.env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    bench = made_site.clone / "lite" / "_bench"
    result = json.loads((bench / "engines.json").read_text())
    (row,) = result["rows"]
    _, names = reference_run()
    assert row["train"]["names"] == names
    assert 0 < row["train"]["first_loss_s"] < row["train"]["names_s"]
    assert 0 < row["kernel"]["session_ready_s"] < row["kernel"]["first_output_s"]
    assert not row["train"]["outside"] and not row["kernel"]["outside"]
    assert set(result["medians"]) == {"chromium"}
    assert bench_engines.render(result) in done.stdout
    stages = json.loads((bench / "browser_bench.json").read_text())["stages"]
    assert [row["name"] for row in stages] == ["flat"]
    assert stages[0]["browser_ms_per_step"] > 0 and stages[0]["cpython_ms_per_step"] > 0


def test_engine_benchmark_times_the_console_path(site, tmp_path):
    """`python lite/bench_engines.py --path console ...` as documented (one cold load,
    Chromium): the console link's run prints microgpt's 20 names, after its first loss line."""
    out = tmp_path / "engines.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "lite" / "bench_engines.py"), "--engines", "chromium",
         "--rounds", "1", "--path", "console", "--site", str(site), "--output", str(out)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["path"] == "console" and "the console link" in done.stdout
    (row,) = result["rows"]
    _, names = reference_run()
    assert row["train"]["names"] == names
    assert 0 < row["train"]["first_loss_s"] < row["train"]["names_s"]
    assert not row["train"]["outside"] and not row["kernel"]["outside"]


PHONE_CHAPTER = """async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  while (!window.jupyterapp) await sleep(50);
  await window.jupyterapp.restored;
  const help = [...document.querySelectorAll('.lm-MenuBar-item')].find(
    (item) => item.textContent === 'Help');
  const bar = document.getElementById('jp-MainMenu').getBoundingClientRect();
  const box = help.getBoundingClientRect();
  const editors = [...document.querySelectorAll('.jp-CodeCell .cm-content')];
  return {width: innerWidth, scrollWidth: document.scrollingElement.scrollWidth,
          help: box.right <= Math.min(bar.right, innerWidth) + 0.5 && box.width > 0,
          wrapped: editors.length > 0
            && editors.every((e) => e.classList.contains('cm-lineWrapping')),
          overflowing: editors.filter((e) => e.scrollWidth > e.clientWidth + 1).length};
}"""


def test_a_phone_reader_opens_and_runs_a_chapter(site, served, playwright_driver):
    """On a 390-pixel phone: the landing page fits the screen, its chapter link opens the
    Notebook app with every menu (Help included) on screen and code lines wrapped, and the
    chapter's cells run."""
    url, _ = served
    chapter = CHAPTERS[1].name
    with engine_session("chromium", playwright_driver, phone=True) as session:
        session.goto(url)
        landing = session.run("async () => [innerWidth, document.scrollingElement.scrollWidth]")
        assert landing == [390, 390], f"the landing page is wider than the phone: {landing}"
        session.goto(url + screenshots.chapter_link(session, chapter))
        assert session.run(screenshots.RUN_FIRST_CELLS, 2, timeout_s=600) == chapter
        layout = session.run(PHONE_CHAPTER)
        outputs = session.run(
            "async () => [...document.querySelectorAll('.jp-CodeCell .jp-OutputArea-output')]"
            ".map((o) => o.textContent).join('\\n')"
        )
        errors = page_errors(session)
    assert layout["scrollWidth"] <= layout["width"], layout
    assert layout["help"], "the Help menu is cut off"
    assert layout["wrapped"] and layout["overflowing"] == 0, layout
    assert "32033 names" in outputs, outputs[:500]
    assert not errors, errors


def test_screenshots_script_writes_desktop_and_phone_pictures(site, tmp_path):
    """`python lite/screenshots.py` as documented: six pictures, desktop and phone sizes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYWRIGHT")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "lite" / "screenshots.py"), "--site", str(site),
         "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=1200, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    listed = [Path(line) for line in done.stdout.split()]
    assert sorted(p.name for p in listed) == sorted(
        f"{what}-{size}.png"
        for what in ("landing", "landing-trained", "chapter")
        for size in ("desktop", "phone")
    )
    for path in listed:
        width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the PNG's IHDR
        assert (width, height) == ((1280, 900) if "desktop" in path.name else (1170, 2532))


STORED_WIDGETS = """async () => {
  // each widget cell scrolled into view (the notebook renders the cells on screen only)
  const nb = window.__nb.content;
  const shown = async (text) => {
    const index = nb.model.sharedModel.cells.findIndex((c) => c.getSource().includes(text));
    await nb.scrollToItem(index, 'start');
    await new Promise((resolve) => setTimeout(resolve, 300));
    return nb.widgets[index].node.querySelector('.jp-OutputArea-output');
  };
  const names = await shown('temperature_slider(run');
  const tables = await shown('attention_explorer(run');
  return {names: names ? names.querySelectorAll('li').length : 0,
          tables: tables ? tables.querySelectorAll('table').length : 0,
          loading: [names, tables].filter((o) => o && o.textContent.includes('Loading')).length};
}"""
LIVE_SLIDER = (
    "from microgpt import Run, load_dataset, stages\n"
    "from microgpt.book.widgets import temperature_slider\n"
    "small = Run(load_dataset().docs[:100], stages.load('flat'), seed=42)\n"
    "losses = [loss for _, loss in small.train(20)]\n"
    "temperature_slider(small, count=4, seed=1)"
)
SHOWN_NAMES = """(index) => {
  const out = window.__nb.content.widgets[index].node.querySelector('.jp-OutputArea-output');
  return out ? [...out.querySelectorAll('li')].map((li) => li.textContent).join(',') : '';
}"""


def test_chapter_widgets_show_and_work_offline(site, served, chromium):
    """Chapter 4's stored slider and attention explorer show at once as what they held (8
    names, one table per head); a slider made by running a cell works offline: dragged with
    the keyboard, it shows the names the kernel samples at the new temperature."""
    url, _ = served
    context, _ = chromium
    nb = browser.Notebook(context, url, "04_training.ipynb")
    try:
        assert nb.page.evaluate(STORED_WIDGETS) == {"names": 8, "tables": 4, "loading": 0}
        nb.page.evaluate(
            "(code) => window.__nb.content.model.cells.get(1).sharedModel.setSource(code)",
            LIVE_SLIDER,
        )
        run = nb.run_cell(1, timeout_s=300)
        assert not browser.errors(run["cell"]["outputs"]), run["cell"]["outputs"]
        nb.page.evaluate("() => window.__nb.content.scrollToItem(1, 'start')")
        handle = nb.page.locator(".jp-Cell").nth(1).locator(".noUi-handle")
        handle.wait_for(timeout=60_000)
        nb.page.wait_for_function(f"() => ({SHOWN_NAMES})(1).split(',').length === 4")
        before = nb.page.evaluate(SHOWN_NAMES, 1)
        handle.focus()
        for _ in range(10):  # 0.5 -> 1.5
            nb.page.keyboard.press("ArrowRight")
        output = nb.page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
        output.get_by_text("temperature 1.50:").wait_for(timeout=120_000)  # the kernel's answer
        after = nb.page.evaluate(SHOWN_NAMES, 1)
    finally:
        nb.close()
    assert len(after.split(",")) == 4 and after != before


# --- the build's pieces, without a browser ----------------------------------------


def test_readme_engine_table_is_the_recorded_measurements():
    """lite/README.md's per-engine table is `bench_engines.py --compare` of the records in
    lite/measured/, as the README's command prints it: no figure typed by hand."""
    measured = ROOT / "lite" / "measured"
    records = [measured / "engines-before.json", measured / "engines-after.json"]
    printed = subprocess.run(
        [sys.executable, str(ROOT / "lite" / "bench_engines.py"), "--compare", *map(str, records)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    before, after = map(bench_engines.read_record, records)
    assert printed.stdout == bench_engines.compare_markdown(before, after) + "\n"
    assert before["path"] == "console" and after["path"] == "worker"
    assert before["rounds"] == after["rounds"] == 3
    assert set(before["medians"]) == set(after["medians"]) == set(engines.ENGINES)
    readme = (ROOT / "lite" / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- engines:start -->\n")[1].split("<!-- engines:end -->")[0]
    assert table == printed.stdout, "lite/README.md's table is not the records'; paste --compare"


def test_measure_collector_makes_the_record_chapter_11_reads(tmp_path):
    """lite/measure_collector.py runs chapter 11's breakdown in the site's Pyodide, in node,
    and writes a record the chapter reads; its Python, thresholds, generations and
    collections per step (counts of objects, not times) are the stored record's."""
    _check_tools(browser_needed=False)
    if shutil.which("node") is None:
        _unavailable("node is not installed; install Node.js and npm")
    stored = recorded_collector()
    out = tmp_path / "collector.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "lite" / "measure_collector.py"), "--output", str(out)],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    new = recorded_collector(out)
    if new["data"] != stored["data"]:
        _unavailable(f"the names here are {new['data']}, the record's {stored['data']}")
    assert new["pyodide"] == stored["pyodide"] == build_site.pyodide_version()
    assert new["command"] == f"python lite/measure_collector.py --output {out}"
    for key in ("python", "threshold", "steps", "callback_generations"):
        assert new[key] == stored[key], key
    for name, stage in stored["stages"].items():
        counts = {g: count for g, (count, _) in stage["collector_by_generation"].items()}
        again = new["stages"][name]["collector_by_generation"]
        assert {g: count for g, (count, _) in again.items()} == counts, name


def test_measure_collector_refuses_a_missing_names_file_in_one_line(tmp_path):
    given = tmp_path / "missing.txt"
    done = subprocess.run(
        [sys.executable, str(ROOT / "lite" / "measure_collector.py"), "--data", str(given),
         "--output", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"error: {given}") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out.json").exists()


def test_compare_refuses_what_is_not_a_record_in_one_line(tmp_path):
    not_record = tmp_path / "names.json"
    not_record.write_text('{"medians": {"chromium": {"first_loss_s": "soon"}}}')
    for given in (not_record, tmp_path / "missing.json"):
        done = subprocess.run(
            [sys.executable, str(ROOT / "lite" / "bench_engines.py"), "--compare", str(given),
             str(given)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith(f"error: {given}") and done.stderr.count("\n") == 1


def test_present_chapter_changes_how_a_chapter_shows_not_what_it_holds():
    nb = browser.load_notebook(ROOT / "book" / "04_training.ipynb")
    presented, offline = build_site.present_chapter(json.loads(json.dumps(nb)))
    assert presented["metadata"]["kernelspec"]["name"] == "python"
    assert presented["metadata"]["language_info"]["codemirror_mode"]["name"] == "python"
    assert len(presented["cells"]) == len(nb["cells"])
    stored_widgets = nb["metadata"]["widgets"][build_site.WIDGET_STATE]["state"]
    widgets = 0
    for before, after in zip(nb["cells"], presented["cells"]):
        assert after["source"] == before["source"]
        if before["cell_type"] != "code":
            assert after == before
            continue
        assert after["metadata"]["trusted"] is True and after["execution_count"] is None
        strip = [{k: v for k, v in o.items() if k != "execution_count"} for o in before["outputs"]]
        for output in strip:  # a stored widget becomes the HTML of its stored state
            view = output.get("data", {}).pop(build_site.WIDGET_VIEW, None)
            if view is not None:
                html = build_site.widget_html(stored_widgets, view["model_id"])
                assert "<li><code>" in html or "<table" in html, html
                output["data"]["text/html"] = html + build_site.STORED_WIDGET
                widgets += 1
        assert [
            {k: v for k, v in o.items() if k != "execution_count"} for o in after["outputs"]
        ] == strip
        assert all(o.get("execution_count") is None for o in after["outputs"])
    assert widgets == 2 and "widgets" not in presented["metadata"]
    tagged = [c for c in nb["cells"] if CDN_TAG in c["metadata"].get("tags", [])]
    assert tagged and offline == {build_site.source_key(c["source"]): c["outputs"] for c in tagged}


def test_offline_note_shows_the_stored_outputs_of_a_needs_cdn_cell(capsys):
    """kernel_offline's handler, in CPython with numpy hidden: a needs-cdn cell that fails
    prints its stored output and one line; any other cell's error is shown as usual."""
    import kernel_offline

    shown = []
    shell = SimpleNamespace(showtraceback=lambda *a, **k: shown.append("traceback"))
    cells = kernel_offline.OfflineCells(shell, "unused/")
    source = "import numpy\nnumpy.zeros(3)\n"
    cells._stored = {
        build_site.source_key(source): [
            {"output_type": "stream", "name": "stdout", "text": ["a\n"]}
        ]
    }
    real = kernel_offline.importlib.util.find_spec
    kernel_offline.importlib.util.find_spec = lambda name: None  # offline: no numpy
    try:
        cells.pre_run_cell(SimpleNamespace(raw_cell=source + "\n"))
        cells.handler(shell, ModuleNotFoundError, ModuleNotFoundError("numpy"), None)
        cells.pre_run_cell(SimpleNamespace(raw_cell="1 / 0"))
        cells.handler(shell, ZeroDivisionError, ZeroDivisionError(), None)
    finally:
        kernel_offline.importlib.util.find_spec = real
    out = capsys.readouterr()
    assert out.out == "a\n"
    assert out.err.count("\n") == 1 and "needs numpy/matplotlib" in out.err
    assert shown == ["traceback"]


def test_favicon_and_package_archive():
    ico = build_site.favicon_ico()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind, count) == (0, 1, 1)
    assert ico[22:30] == b"\x89PNG\r\n\x1a\n"
    names = zipfile.ZipFile(io.BytesIO(build_site.package_zip())).namelist()
    assert "microgpt/__init__.py" in names and "microgpt/stages/flat.py" in names
    assert not [n for n in names if "__pycache__" in n]
    options = build_site.stage_options("flat")
    assert '<option value="flat" selected>flat</option>' in options
    assert "tensor (numpy from Pyodide's CDN: online only)" in options
