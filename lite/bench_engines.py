"""The landing page's timings in every engine: cold loads of the built site, offline.

For each engine (Chromium, Firefox ESR, WebKitGTK; lite/engines.py) and each round, two
fresh profiles (cold caches): one opens the landing page and clicks Train (default
settings: flat, 1000 steps, seed 42), and times the click to the first loss point drawn
(`#loss` data-steps >= 1) and to the 20th name (`#names li`); the other opens a chapter
in JupyterLab and times the navigation to the output of a first `print` (the kernel's
start).  Rounds interleave the engines; the report gives each figure's median and the
machine's load average around each measurement (other jobs share its processors).

`--path console` times the landing page's link to the JupyterLite console instead of
Train: the click to the console's first loss line and to its "sample 20:" line.  That
link is the "see the code" path of this site, and the Train button of editions before the
Web Worker trainer, so the same command measures an older site's landing page (`--site`).

Usage: python lite/bench_engines.py [--engines chromium,firefox,webkit] [--rounds 3]
                                    [--path worker|console] [--site DIR] [--output PATH]
Writes lite/_bench/engines.json (default) and prints a table.

       python lite/bench_engines.py --compare BEFORE.json AFTER.json
prints the Markdown table of two such files, per engine and figure, with the targets: the
table of lite/README.md, rendered from the records in lite/measured/.
"""

import argparse
import datetime
import json
import re
import statistics
import sys
import time
from pathlib import Path

import browser
import build_site
import engines

from microgpt.book import chapters
from microgpt.files import write_atomic

OUTPUT = build_site.LITE / "_bench" / "engines.json"
STEPS = "async () => Number(document.getElementById('loss').dataset.steps) >= 1"
NAMES = """async () => {
  const run = window.microgptRun;
  if (run && run.state === 'error') return 'error: ' + run.error;
  return document.querySelectorAll('#names li').length >= 20;
}"""
RUN = """async () => {
  const run = window.microgptRun;
  return {names: run.names, steps: run.losses.length, timings: run.timings, ms: run.ms,
          state: run.state, error: run.error};
}"""
# the console path: the landing page's link to the REPL (`#console`; an `a#train` in
# editions before the trainer), then the REPL's output lines
CLICK_CONSOLE = """async () => {
  (document.getElementById('console') || document.querySelector('a#train')).click();
}"""
CONSOLE_TEXT = """async () => [...document.querySelectorAll('.jp-OutputArea-output')]
  .map((o) => o.textContent).join('\\n')"""
CONSOLE_LOSS = CONSOLE_TEXT.replace("async () =>", "async () => /\\| loss \\d/.test(") + ")"
CONSOLE_NAMES = """async () => {
  const text = await (CONSOLE_TEXT)();
  if (/Error/.test(text)) return 'error: ' + text.slice(-300);
  return text.includes('sample 20:');
}""".replace("CONSOLE_TEXT", CONSOLE_TEXT)
# navigation to the output of a first print, in the page's own clock (performance.now()
# counts from the navigation's start)
KERNEL_START = """async (path) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  while (!window.jupyterapp) await sleep(20);
  const app = window.jupyterapp;
  await app.restored;
  // the document's panel among the main area's (not currentWidget: without focus, as in a
  // headless Firefox, there is none)
  const find = () => [...app.shell.widgets('main')].find(
    (w) => w.context && w.sessionContext && w.context.path === path);
  let widget = find();
  while (!widget) {
    await sleep(20);
    widget = find();
  }
  await widget.context.ready;
  await widget.sessionContext.ready;
  const ready = performance.now();
  const future = widget.sessionContext.session.kernel.requestExecute({code: "print('ready')"});
  const output = await new Promise((resolve) => {
    future.onIOPub = (msg) => {
      if (msg.header.msg_type === 'stream') resolve(performance.now());
    };
  });
  return {session_ready_s: ready / 1000, first_output_s: output / 1000};
}"""


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def train_once(engine, url, playwright=None):
    """Click Train on a cold landing page: seconds to the first loss point and to 20 names."""
    with engines.open_session(engine, playwright) as session:
        session.goto(url)
        started = time.monotonic()
        session.run("async () => { document.getElementById('train').click(); }")
        _, first = session.wait_for(STEPS, timeout_s=300, interval_s=0.05)
        done, _ = session.wait_for(NAMES, timeout_s=600, interval_s=0.05)
        names_s = time.monotonic() - started
        if done is not True:
            raise engines.EngineError(f"{engine}: training failed: {done}")
        run = session.run(RUN)
        return {
            "first_loss_s": first,
            "names_s": names_s,
            "in_page": {k: v / 1000 for k, v in run["timings"].items()},
            "worker_ms": run["ms"],
            "names": run["names"],
            "outside": session.outside(),
        }


def console_once(engine, url, playwright=None):
    """Click the landing page's console link on a cold profile: seconds to the console's
    first loss line and to its 20th name."""
    with engines.open_session(engine, playwright) as session:
        session.goto(url)
        started = time.monotonic()
        session.run(CLICK_CONSOLE)
        _, first = session.wait_for(CONSOLE_LOSS, timeout_s=600, interval_s=0.05)
        done, _ = session.wait_for(CONSOLE_NAMES, timeout_s=600, interval_s=0.05)
        names_s = time.monotonic() - started
        if done is not True:
            raise engines.EngineError(f"{engine}: the console's run failed: {done}")
        text = session.run(CONSOLE_TEXT)
        names = re.findall(r"sample +\d+: (\S*)", text)
        return {"first_loss_s": first, "names_s": names_s, "names": names,
                "outside": session.outside()}  # fmt: skip


def kernel_once(engine, url, chapter, playwright=None):
    """A cold JupyterLab page of `chapter`: seconds from navigation to a first print's output."""
    with engines.open_session(engine, playwright) as session:
        session.goto(f"{url}lab/index.html?path={chapter}")
        marks = session.run(KERNEL_START, chapter, timeout_s=600)
        return {**marks, "outside": session.outside()}


def run(site, names, rounds, output, playwright=None, path="worker"):
    landing = {"worker": train_once, "console": console_once}[path]
    chapter = chapters(build_site.BOOK)[1].name  # the first chapter with code to run
    rows = []
    with browser.serve(site) as url:
        for index in range(rounds):
            for engine in names:
                row = {"engine": engine, "round": index, "load_before": load_average()}
                row["train"] = landing(engine, url, playwright)
                row["load_between"] = load_average()
                row["kernel"] = kernel_once(engine, url, chapter, playwright)
                row["load_after"] = load_average()
                rows.append(row)
                print(summary_line(row), flush=True)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    result = {"rounds": rounds, "path": path, "date": date, "site": str(site),
              "chapter": chapter, "rows": rows, "medians": medians(rows)}  # fmt: skip
    write_atomic(Path(output), json.dumps(result, indent=2).encode())
    return result


def summary_line(row):
    t, k = row["train"], row["kernel"]
    return (
        f"{row['engine']:<9} round {row['round']}: first loss {t['first_loss_s']:.1f} s, "
        f"20 names {t['names_s']:.1f} s, kernel start {k['first_output_s']:.1f} s "
        f"(load {row['load_before']:.1f} / {row['load_between']:.1f} / {row['load_after']:.1f})"
    )


def medians(rows):
    out = {}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        loads = [r[k] for r in mine for k in ("load_before", "load_between", "load_after")]
        out[engine] = {
            "first_loss_s": statistics.median(r["train"]["first_loss_s"] for r in mine),
            "names_s": statistics.median(r["train"]["names_s"] for r in mine),
            "kernel_start_s": statistics.median(r["kernel"]["first_output_s"] for r in mine),
            "load_min": min(loads),
            "load_max": max(loads),
        }
    return out


def render(result):
    lines = [
        f"median of {result['rounds']} cold loads, offline, landing page: "
        f"{'Train (Web Worker)' if result['path'] == 'worker' else 'the console link'} "
        f"(kernel start: JupyterLab, {result['chapter']})",
        "engine    first loss  20 names  kernel start  load average",
    ]
    for engine, m in result["medians"].items():
        lines.append(
            f"{engine:<9}{m['first_loss_s']:>9.1f} s{m['names_s']:>8.1f} s"
            f"{m['kernel_start_s']:>12.1f} s  {m['load_min']:.1f}-{m['load_max']:.1f}"
        )
    return "\n".join(lines)


# the targets of the landing page and the kernel start, seconds (None: none set)
TARGETS = {
    "chromium": {"first_loss_s": 5, "names_s": 12, "kernel_start_s": 8},
    "firefox": {"first_loss_s": 10, "names_s": 24, "kernel_start_s": None},
    "webkit": {"first_loss_s": 10, "names_s": 24, "kernel_start_s": 15},
}
FIGURES = {
    "first_loss_s": "first loss on screen",
    "names_s": "20 names on screen",
    "kernel_start_s": "kernel start",
}


def compare_markdown(before, after):
    """Two records' medians side by side, per engine and figure, with the targets."""
    lines = [
        "| engine | figure | before | after | target |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for engine in after["medians"]:
        old, new = before["medians"].get(engine), after["medians"][engine]
        for key, label in FIGURES.items():
            target = TARGETS.get(engine, {}).get(key)
            lines.append(
                f"| {engine} | {label} | {f'{old[key]:.1f} s' if old else '-'} "
                f"| {new[key]:.1f} s | {f'<= {target} s' if target else '-'} |"
            )
    for name, record in (("before", before), ("after", after)):
        loads = ", ".join(
            f"{engine} {m['load_min']:.1f}-{m['load_max']:.1f}"
            for engine, m in record["medians"].items()
        )
        lines.append("")
        lines.append(
            f"{name}: median of {record['rounds']} cold loads per engine, landing page by "
            f"{'Train (Web Worker)' if record['path'] == 'worker' else 'the console link'}, "
            f"{record.get('date', 'undated')}; load average {loads}"
        )
    return "\n".join(lines)


def read_record(path):
    """A file bench_engines wrote; one line naming the problem otherwise."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        for m in record["medians"].values():
            for key in (*FIGURES, "load_min", "load_max"):
                float(m[key])
        record["rounds"], record["path"]
    except OSError as e:
        raise SystemExit(
            f"error: {path}: {e.strerror}; pass a file bench_engines.py wrote"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SystemExit(
            f"error: {path} is not a bench_engines.py record; make one with "
            "python lite/bench_engines.py --output PATH"
        ) from None
    return record


def engine_list(text):
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in engines.ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown engine {unknown[0] if unknown else text!r}; "
            f"choose from {','.join(engines.ENGINES)}"
        )
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=engine_list, default=list(engines.ENGINES))
    parser.add_argument("--rounds", type=int, default=3, help="cold loads per engine (default 3)")
    parser.add_argument(
        "--path",
        choices=["worker", "console"],
        default="worker",
        help="what the landing page's timing clicks: Train (default) or the console link",
    )
    parser.add_argument("--site", type=Path, help="a built site (default: make site's, rebuilt)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--compare", nargs=2, metavar=("BEFORE", "AFTER"), type=Path,
        help="print the Markdown table of two records and exit",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.compare:
        print(compare_markdown(*(read_record(p) for p in args.compare)))
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for engine in args.engines:
        reason = engines.missing(engine)
        if reason:
            raise SystemExit(f"error: {engine}: {reason}")
    site = args.site.resolve() if args.site else build_site.build()
    # an older edition (--path console) need not hold this edition's trainer
    needed = ["index.html", "lab/index.html", "repl/index.html"]
    if (
        args.path == "worker"
        and build_site.missing_files(site)
        or not all((site / p).is_file() for p in needed)
    ):
        raise SystemExit(f"error: no working site in {site}; build it with: make site")
    result = run(site, args.engines, args.rounds, args.output, path=args.path)
    print(render(result))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
