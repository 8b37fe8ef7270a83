"""Chapter 11's collector figures in the browser's Python: Pyodide's CPython 3.14, in node.

Runs what chapter 11's breakdown cell runs (five steps of `fused_norm` and of `gc`,
`microgpt.book.breakdown.measure`: CPU ms per phase, collections per step by the
generation `gc.callbacks` report) in the Pyodide the site ships (the same wasm, under
node's V8 rather than a browser's engine), with this working tree's package and the
names the site would ship (--data, MICROGPT_DATA, ...). It adds what the chapter cannot
measure in CPython 3.11: Python's version, `gc.get_threshold()`, and the generation
`gc.callbacks` report for `gc.collect(0)`, `(1)` and `(2)`. The record goes to
microgpt/book/collector_pyodide.json, where the chapter reads it, in CPython and in the
browser (the site serves the package's files).

Usage: python lite/measure_collector.py [--data PATH] [--output PATH]
"""

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import build_site
import pyodide_dist

from microgpt.files import write_atomic
from microgpt.tools.args import ArgumentParser

RUNNER = build_site.LITE / "measure_collector.mjs"
OUTPUT = build_site.PACKAGE / "book" / "collector_pyodide.json"
STAGES, STEPS = ("fused_norm", "gc"), 5  # chapter 11's breakdown cell
MARK = "@@JSON@@"

MEASURE_CODE = """
import gc, json, platform, random, sys
from microgpt import load_dataset
from microgpt.book.breakdown import measure

random.seed(42)
docs = load_dataset().docs  # MICROGPT_DATA, as the chapter's first cell
threshold = gc.get_threshold()
breakdowns = {name: measure(name, docs, steps=STEPS) for name in STAGES}
def rounded(value):
    return None if value is None else round(value, 4)
stages = {
    name: {
        "ms_per_step": {phase: rounded(ms) for phase, ms in b.ms_per_step().items()},
        "collector_by_generation": {
            str(g): [rounded(count), rounded(ms)]
            for g, (count, ms) in b.collector_by_generation().items()
        },
    }
    for name, b in breakdowns.items()
}
# the generations the collections of the breakdown reported, then those of gc.collect(n)
called = {"automatic": sorted({g for b in breakdowns.values() for g in b.collections})}
def note(phase, info):
    if phase == "start":
        seen.append(info["generation"])
for generation in (0, 1, 2):
    seen = []
    gc.callbacks.append(note)
    try:
        gc.collect(generation)
    finally:
        gc.callbacks.remove(note)
    called[f"gc.collect({generation})"] = seen
print(MARK + json.dumps({
    "python": sys.version, "python_version": platform.python_version(),
    "implementation": platform.python_implementation(), "platform": sys.platform,
    "threshold": list(threshold), "names": len(docs), "stages": stages,
    "callback_generations": called,
}))
"""


def log(msg):
    print(f"[collector] {msg}", flush=True)


def pyodide_core(version, dest):
    """The site's Pyodide core files, from the npm tarball the build caches, in dest."""
    with tarfile.open(pyodide_dist.fetch_pyodide(version, build_site.CACHE)) as tar:
        for name in pyodide_dist.CORE + ["pyodide-lock.json"]:
            (dest / name).write_bytes(tar.extractfile(f"package/{name}").read())


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def measure(data, version):
    """What MEASURE_CODE printed, run in Pyodide `version` under node."""
    code = MEASURE_CODE.replace("STEPS", str(STEPS)).replace("STAGES", repr(STAGES))
    code = code.replace("MARK", repr(MARK))
    with tempfile.TemporaryDirectory(prefix="pyodide-", dir=build_site.CACHE) as tmp:
        pyodide_core(version, Path(tmp))
        cmd = [pyodide_dist.node(), str(RUNNER), tmp, str(build_site.PACKAGE), str(data), code]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit("error: the measurement in Pyodide failed (its output is above)")
    return json.loads(lines[-1][len(MARK) :])


def main(argv=None):
    parser = ArgumentParser(prog="lite/measure_collector.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="names file (default: MICROGPT_DATA, as the site build)")
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help=f"where the record goes (default {OUTPUT})"
    )
    args = parser.parse_args(argv)
    data, _ = build_site.find_data(args.data)
    version = build_site.pyodide_version()
    build_site.CACHE.mkdir(parents=True, exist_ok=True)
    node = subprocess.run([pyodide_dist.node(), "--version"], capture_output=True, text=True)
    started, load_before = time.time(), load_average()
    log(f"Pyodide {version} in node {node.stdout.strip()}: {', '.join(STAGES)}, {STEPS} steps")
    measured = measure(data, version)
    record = {
        "record_format": 1,
        "what": (
            "chapter 11's breakdown cell (microgpt.book.breakdown.measure, "
            f"{STEPS} steps of {' and '.join(STAGES)}) in Pyodide under node, in a fresh "
            "interpreter after loading the names"
        ),
        "command": " ".join(["python lite/measure_collector.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pyodide": version,
        "engine": f"node {node.stdout.strip()}",
        "data": build_site.data_description(data),
        "steps": STEPS,
        "load_average": {"start": load_before, "end": load_average()},
        "seconds": round(time.time() - started, 1),
        **measured,
    }
    write_atomic(args.output, (json.dumps(record, indent=1) + "\n").encode())
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
