"""Train every pure-Python stage in Pyodide (headless Chromium) and in CPython, same steps.

Both sides run the same code on the same input.txt: the package's own timing
(`microgpt.tools.timing.side_by_side`, stages interleaved, median ms/step over rounds,
same documents), so the figures compare like for like.
Writes lite/_bench/browser_bench.json (for the results chapter) and prints a table.

Usage: python lite/bench_browser.py [--steps N] [--repeat R] [--stages A,B] [--output PATH]
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import browser
import build_site

from microgpt import stages
from microgpt.book import chapters
from microgpt.files import write_atomic

OUTPUT = build_site.LITE / "_bench" / "browser_bench.json"
BROWSER_ONLY_SKIPS = {"threads"}  # Pyodide has no threads (and it is not in the chain)


BENCH_CODE = """
import json
from microgpt import stages
from microgpt.data import load_dataset
from microgpt.tools import timing

stage_names, steps, repeat = STAGE_NAMES, STEPS, REPEAT
docs = load_dataset().docs  # input.txt beside the notebooks, as a reader gets it
modules = {name: stages.load(name) for name in stage_names}
results = timing.side_by_side(modules, docs, steps, repeat)  # a warm-up, interleaved rounds
print("@@JSON@@" + json.dumps({name: r.ms_per_step for name, r in results.items()}))
"""


def bench_code(stage_names, steps, repeat):
    """The package's own timing (`microgpt.tools.timing.side_by_side`, the loop of
    `python -m microgpt bench`), the same code on both sides.

    Not `microgpt bench` itself: its peak-memory pass needs subprocesses.
    """
    return (
        BENCH_CODE.replace("STAGE_NAMES", repr(stage_names))
        .replace("STEPS", str(steps))
        .replace("REPEAT", str(repeat))
    )


def parse(text):
    if "@@JSON@@" not in text:
        raise RuntimeError(f"the benchmark printed no result: {text[-500:]}")
    return json.loads(text.split("@@JSON@@", 1)[1])


def cpython_bench(code, site):
    """The same code in CPython, in the site's contents folder (same input.txt)."""
    env = dict(os.environ, PYTHONPATH=str(build_site.ROOT))
    env.pop("MICROGPT_DATA", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=site / "files"
    )
    if proc.returncode:
        raise RuntimeError(f"CPython bench failed: {proc.stderr.strip()[-500:]}")
    return parse(proc.stdout)


def browser_bench(context, base_url, code, timeout_s):
    """({stage: ms/step} in the browser, timings of the kernel start)."""
    chapter = chapters(build_site.BOOK)[0].name
    started = time.monotonic()
    nb = browser.Notebook(context, base_url, chapter)
    try:
        first = nb.execute("print('ready')", timeout_s=120)
        first_output_s = time.monotonic() - started
        if first["text"] != "ready\n":
            raise RuntimeError(f"kernel did not answer: {first}")
        result = nb.execute(code, timeout_s=timeout_s)
    finally:
        nb.close()
    if result["error"]:
        raise RuntimeError(f"browser bench failed: {result['error']}")
    return parse(result["text"]), {"page_open_s": nb.open_s, "first_output_s": first_output_s}


def bench_names(only=None):
    """The stages to time: every in-chain pure-Python stage, or those of `only` (any order)."""
    if not only:
        return [n for n in build_site.pure_python_stages() if n not in BROWSER_ONLY_SKIPS]
    unknown = [n for n in only if n not in stages.BY_NAME]
    if unknown:
        raise SystemExit(f"error: unknown stage {unknown[0]!r}; choose from {stages.stage_names()}")
    return list(only)


def run(steps, repeat, output, playwright=None, timeout_s=1200, site=None, only=None):
    """Serve site (default: build lite/_output if stale), bench both sides, write output.

    playwright: a running sync Playwright (a second one cannot start in the same thread).
    only: stage names to time instead of every in-chain pure-Python stage.
    """
    from playwright.sync_api import sync_playwright

    site = Path(site).resolve() if site else build_site.build()
    names = bench_names(only)
    if not names:
        raise SystemExit("error: no pure-Python stage registered; nothing to benchmark")
    code = bench_code(names, steps, repeat)
    driver = contextlib.nullcontext(playwright) if playwright else sync_playwright()
    with browser.serve(site) as url, driver as pw:
        with browser.browser_context(pw) as (context, requests):
            in_browser, kernel = browser_bench(context, url, code, timeout_s)
            leaks = requests.outside_loopback()
    on_cpython = cpython_bench(code, site)
    rows = []
    for name in names:
        ms, cms = in_browser[name], on_cpython[name]
        rows.append(
            {
                "name": name,
                "browser_ms_per_step": ms,
                "cpython_ms_per_step": cms,
                "browser_vs_cpython": ms / cms,
                "browser_1000_steps_s": ms,  # ms/step x 1000 steps / 1000 ms/s
            }
        )
    fastest = min(rows, key=lambda r: r["browser_ms_per_step"])
    result = {
        "steps": steps,
        "repeat": repeat,
        "pyodide": build_site.pyodide_version(),
        "kernel": kernel,
        "stages": rows,
        "fastest": fastest["name"],
        "goals": {
            "fastest_1000_steps_s": fastest["browser_1000_steps_s"],
            "fastest_1000_steps_goal_s": 8,
            "first_output_s": kernel["first_output_s"],
            "first_output_goal_s": 15,
        },
        "requests_outside_loopback": [u for u, _ in leaks],
    }
    write_atomic(Path(output), json.dumps(result, indent=2).encode())
    return result


def render(result):
    lines = [
        f"stage               browser ms/step  CPython ms/step  ratio  (steps {result['steps']})",
    ]
    for r in result["stages"]:
        lines.append(
            f"{r['name']:<20}{r['browser_ms_per_step']:>15.2f}{r['cpython_ms_per_step']:>17.2f}"
            f"{r['browser_vs_cpython']:>7.2f}"
        )
    g = result["goals"]
    lines.append(
        f"fastest ({result['fastest']}): 1000 steps in {g['fastest_1000_steps_s']:.1f} s "
        f"(goal <= 8 s); kernel start to first output {g['first_output_s']:.1f} s (goal <= 15 s)"
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per timing")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--stages",
        type=lambda text: [n for n in text.split(",") if n],
        help="comma-separated stages (default: every in-chain pure-Python stage)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if not Path(browser.CHROMIUM).exists():
        raise SystemExit(f"error: {browser.CHROMIUM} not found; run: apt-get install -y chromium")
    result = run(args.steps, args.repeat, args.output, only=args.stages)
    print(render(result))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
