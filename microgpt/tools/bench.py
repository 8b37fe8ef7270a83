"""`python -m microgpt bench`: every stage timed side by side, in one process.

Timings on a shared machine drift by tens of percent from minute to minute, so the
stages run interleaved (A B C A B C ...) and each figure is the median over rounds:
a slow minute hurts every stage alike and the ratios hold. Every timing trains a
fresh seed-42 model on the same first documents of the shuffled dataset, with the
learning-rate schedule of the full run, so all stages do the same work; fast stages
repeat it within a round until a time budget is spent. Only one stage's model is
alive while it is timed: the cyclic collector walks every live object, so models of
other stages would slow the stages that leave it on. CPU time is reported beside
wall time: it barely moves with the machine's load. Peak memory is the peak RSS
of a separate process per stage (the only honest per-stage figure: one process
keeps the memory of every stage it has run).
"""

import argparse
import datetime
import gc
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from .. import files, stages
from ..config import GPTConfig
from ..data import load_dataset
from ..errors import MicrogptError
from ..sampling import iter_names
from ..train import Run
from .args import (
    ArgumentParser,
    Output,
    check_distinct_paths,
    count,
    input_file,
    output_file,
    positive_int,
    run_command,
    whole_number,
)

FULL_STEPS = 1000  # the run the estimates are for: microgpt's
DEFAULT_STEPS = 30
DEFAULT_REPEAT = 3
DEFAULT_SAMPLES = 20
ROUND_BUDGET_S = 0.25  # a fast stage repeats its timing within a round until this is spent
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
MEMORY_NOTE = (
    "peak RSS of one subprocess per stage: timed steps, one step on the longest name, sampling"
)


class BenchError(MicrogptError):
    """A benchmark that cannot run; the message says what to do."""


# ---------------------------------------------------------------------------------------
# which stages


def module_present(stage):
    """Whether the stage's module file exists (a registered stage may not be written yet)."""
    return find_spec(stage.module_name) is not None


def default_stages():
    """Every in-chain stage that can run here, in pass order."""
    return [s.name for s in stages.available() if s.in_chain and module_present(s)]


def parse_stage_list(text):
    """`a,b,c` -> stage names in pass order; argparse turns the errors into exit 2."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one stage name, e.g. baseline,flat")
    unknown = [name for name in names if name not in stages.BY_NAME]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown stage {unknown[0]!r}; choose from: {', '.join(stages.names())}"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a stage twice")
    order = stages.names()
    return sorted(names, key=order.index)


def load_modules(names):
    """{name: module}, or a `StageError` for the first stage that cannot run here."""
    modules = {}
    for name in names:
        stage = stages.BY_NAME[name]
        if not stages.missing_requirements(stage) and not module_present(stage):
            raise stages.StageError(
                f"stage {name!r} has no module {stage.module_name}; pick others with --stages"
            )
        modules[name] = stages.load(name)
    return modules


# ---------------------------------------------------------------------------------------
# measuring


@contextmanager
def isolated_gc():
    """Undo a stage's garbage-collector tuning, so it cannot speed up or slow the next one."""
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    graph = sys.modules.get("microgpt.stages.graph")
    if graph is not None:  # a pooled stage's spare nodes are not the next stage's to carry
        graph.free_nodes.clear()
    gc.collect()  # the previous stage's garbage is not this stage's cost
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()


def timed_docs(docs, num_steps):
    """The names of the first `num_steps` steps: a names file shorter than that is
    cycled, as training does, so every step is timed and counted."""
    return [docs[i % len(docs)] for i in range(num_steps)]


def time_training(module, docs, num_steps):
    """(wall s, CPU s, the trained Run) of `num_steps` fresh steps: a full run's first steps."""
    run = Run(docs, module, seed=42)
    tokens = [run.tokenizer.encode(doc) for doc in timed_docs(run.docs, num_steps)]
    start, start_cpu = time.perf_counter(), time.process_time()
    for step, toks in enumerate(tokens):
        run.model.train_step(toks, step, FULL_STEPS)
    return time.perf_counter() - start, time.process_time() - start_cpu, run


def time_sampling(run, num_samples):
    """Seconds to draw `num_samples` names; the rng is rewound so repeats draw the same.

    The names are drawn one by one and dropped: `--samples 10000000` takes long, but
    no memory.
    """
    state = run.rng.getstate()
    start = time.perf_counter()
    for _ in iter_names(run.model, run.tokenizer, run.rng, num_samples):
        pass
    elapsed = time.perf_counter() - start
    run.rng.setstate(state)
    return elapsed


def measure_round(module, docs, num_steps, num_samples, budget=ROUND_BUDGET_S):
    """(ms per step, CPU ms per step, ms per sampled name) of one round.

    Each is repeated until `budget` seconds are spent, so fast stages average many runs.
    """
    with isolated_gc():
        train_s, cpu_s, repeats, run = 0.0, 0.0, 0, None
        while repeats == 0 or train_s < budget:
            elapsed, elapsed_cpu, last_run = time_training(module, docs, num_steps)
            run = run or last_run
            train_s += elapsed
            cpu_s += elapsed_cpu
            repeats += 1
        per_step = 1000 / (repeats * num_steps)
        if num_samples == 0:
            return train_s * per_step, cpu_s * per_step, None
        sample_s, sample_repeats = 0.0, 0
        while sample_repeats == 0 or sample_s < budget:
            sample_s += time_sampling(run, num_samples)
            sample_repeats += 1
        sample_ms = 1000 * sample_s / (sample_repeats * num_samples)
        return train_s * per_step, cpu_s * per_step, sample_ms


def peak_rss_mib():
    """This process's peak resident memory in MiB.

    Linux's `ru_maxrss` survives `exec`: a child started from a 200 MiB parent reports
    at least 200 MiB. VmHWM belongs to the address space, which `exec` replaces, so it
    is the child's own peak; `ru_maxrss` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)  # bytes there, KiB here


def peak_rss_child(argv):
    """Body of the memory subprocess: run one stage briefly, print its peak RSS in MiB."""
    stage, data_path, num_steps, num_samples = argv[0], argv[1], int(argv[2]), int(argv[3])
    docs = load_dataset(data_path).docs
    run = Run(docs, stages.load(stage), seed=42)
    for step, doc in enumerate(timed_docs(run.docs, num_steps)):
        run.model.train_step(run.tokenizer.encode(doc), step, FULL_STEPS)
    # the longest name builds the largest step; its peak is the peak of a whole run
    longest = max(run.docs, key=len)
    run.model.train_step(run.tokenizer.encode(longest), num_steps, FULL_STEPS)
    for _ in iter_names(run.model, run.tokenizer, run.rng, num_samples):
        pass
    print(json.dumps({"peak_mib": peak_rss_mib()}))


def measure_peak_mib(stage, data_path, num_steps, num_samples):
    """Peak RSS in MiB of a fresh process running `stage`, or None where RSS is unknown."""
    try:
        import resource  # noqa: F401  (absent on Windows; in Pyodide find_spec raises)
    except ImportError:
        return None
    root = str(Path(__file__).resolve().parents[2])  # the folder holding `microgpt`
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.getenv("PYTHONPATH")]))
    )
    code = (
        "import sys; from microgpt.tools.bench import peak_rss_child; peak_rss_child(sys.argv[1:])"
    )
    args = [sys.executable, "-c", code, stage, str(data_path), str(num_steps), str(num_samples)]
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"memory run of stage {stage!r} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def num_positions(docs):
    """Token positions trained on: the work of a step grows with the name's length."""
    cfg = GPTConfig()  # the configuration every timing trains
    return sum(cfg.positions(len(doc) + 2) for doc in docs)  # BOS, the name, BOS


@dataclass
class StageResult:
    name: str
    ms_per_step_rounds: list = field(default_factory=list)
    cpu_ms_per_step_rounds: list = field(default_factory=list)
    sample_ms_rounds: list = field(default_factory=list)
    peak_mib: float | None = None

    @property
    def ms_per_step(self):
        return statistics.median(self.ms_per_step_rounds)

    @property
    def sample_ms_per_name(self):
        rounds = [x for x in self.sample_ms_rounds if x is not None]
        return statistics.median(rounds) if rounds else None


def run_bench(names, modules, docs, num_steps, repeat, num_samples, data_path, log):
    """The results of every stage, measured in `repeat` interleaved rounds."""
    results = {name: StageResult(name) for name in names}
    for name in names:  # warm-up: imports, first-call costs, caches
        measure_round(modules[name], docs, min(num_steps, 2), min(num_samples, 1), budget=0)
    for r in range(repeat):
        for name in names:
            ms, cpu_ms, sample_ms = measure_round(modules[name], docs, num_steps, num_samples)
            results[name].ms_per_step_rounds.append(ms)
            results[name].cpu_ms_per_step_rounds.append(cpu_ms)
            results[name].sample_ms_rounds.append(sample_ms)
        figures = ", ".join(f"{n} {results[n].ms_per_step_rounds[-1]:.3g}" for n in names)
        log(f"round {r + 1}/{repeat} (ms/step): {figures}")
    for name in names:
        results[name].peak_mib = measure_peak_mib(name, data_path, num_steps, num_samples)
        if results[name].peak_mib is not None:
            log(f"peak RSS {name}: {results[name].peak_mib:.1f} MiB")
    return [results[name] for name in names]


def summarize(results, docs, num_steps):
    """Result rows with speed-ups and full-run estimates, as they go into the JSON."""
    baseline = next((r for r in results if r.name == "baseline"), None)
    scale = full_run_scale(docs, num_steps)
    rows, previous = [], None
    for r in results:
        ms = r.ms_per_step
        sample_ms = r.sample_ms_per_name
        est = ms * scale * FULL_STEPS / 1000 + (sample_ms or 0) * DEFAULT_SAMPLES / 1000
        rows.append(
            {
                "name": r.name,
                "ms_per_step": ms,
                "speedup_vs_baseline": baseline.ms_per_step / ms if baseline else None,
                "speedup_vs_previous": previous.ms_per_step / ms if previous else None,
                "sample_ms_per_name": sample_ms,
                "peak_mib": r.peak_mib,
                "est_full_run_s": est,
                "ms_per_step_rounds": r.ms_per_step_rounds,
                # CPU time of the process: less sensitive to a busy machine, but it adds up
                # the time of every thread (a threaded stage looks slower than it is)
                "cpu_ms_per_step": statistics.median(r.cpu_ms_per_step_rounds),
                "summary": stages.BY_NAME[r.name].summary,
            }
        )
        previous = r
    return rows


def full_run_scale(docs, num_steps):
    """Token positions per step of the full run over those of the timed steps (about 1)."""
    shuffled = list(docs)
    random.Random(42).shuffle(shuffled)  # Run's order: the same seed, the same first call
    full = [shuffled[i % len(shuffled)] for i in range(FULL_STEPS)]
    timed = timed_docs(shuffled, num_steps)
    return (num_positions(full) / FULL_STEPS) / (num_positions(timed) / num_steps)


# ---------------------------------------------------------------------------------------
# reporting


def machine_description():
    cpus = os.cpu_count()
    processor = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs ({processor})"


def python_description():
    gil = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "with GIL"
    return f"{platform.python_implementation()} {platform.python_version()} ({gil})"


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def fmt_seconds(value):
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def fmt_speedup(value):
    if value is None:
        return "-"
    return f"{value:.0f}x" if value >= 100 else f"{value:.1f}x"


TABLE_COLUMNS = (
    "stage",
    "ms/step",
    "CPU ms/step",
    "vs baseline",
    "vs previous",
    "sample ms/name",
    "peak RSS MiB",
    "est. 1000 steps",
)


def table_cells(row):
    return (
        row["name"],
        fmt(row["ms_per_step"], ".3g" if row["ms_per_step"] < 1 else ".1f"),
        fmt(row["cpu_ms_per_step"], ".3g" if row["cpu_ms_per_step"] < 1 else ".1f"),
        fmt_speedup(row["speedup_vs_baseline"]),
        fmt_speedup(row["speedup_vs_previous"]),
        fmt(row["sample_ms_per_name"], ".3g" if (row["sample_ms_per_name"] or 0) < 1 else ".1f"),
        fmt(row["peak_mib"], ".1f"),
        fmt_seconds(row["est_full_run_s"]),
    )


def method_note(report):
    return (
        f"median of {report['repeat']} interleaved rounds, each training steps 1-{report['steps']} "
        f"of the seed-42 run from scratch; sampling {report['samples']} names; {MEMORY_NOTE}"
    )


def render_text(report):
    """The table for a terminal."""
    cells = [TABLE_COLUMNS] + [table_cells(row) for row in report["stages"]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_COLUMNS))]
    lines = []
    for k, c in enumerate(cells):
        first = c[0].ljust(widths[0])
        lines.append("  ".join([first] + [x.rjust(w) for x, w in zip(c[1:], widths[1:])]))
        if k == 0:
            lines.append("-" * len(lines[0]))
    lines.append("")
    lines.append(f"{report['python']} on {report['machine']}, {report['date']}")
    lines.append(method_note(report))
    return "\n".join(lines) + "\n"


def render_markdown(report):
    """The table for the README, with the command that made it."""
    lines = [
        "| " + " | ".join(TABLE_COLUMNS) + " | what the pass changes |",
        "|" + "|".join([":---"] + ["---:"] * (len(TABLE_COLUMNS) - 1)) + "|:---|",
    ]
    for row in report["stages"]:
        cells = list(table_cells(row))
        cells[0] = f"`{cells[0]}`"
        cells.append(row.get("summary") or stages.BY_NAME[row["name"]].summary)
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Generated by `{report['command']}`: {method_note(report)}. "
        f"{report['python']} on {report['machine']}, {report['date']}.",
    ]
    return "\n".join(lines) + "\n"


def replace_between_markers(text, table, where):
    """`text` with the part between the bench markers replaced by `table`."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise BenchError(
            f"{where}: no {README_START} ... {README_END} markers; add them where the table goes"
        )
    return text[: start + len(README_START)] + "\n" + table + text[end:]


def render_plot(report):
    """PNG bytes of a bar chart of ms/step per stage (log scale, speed-ups on the bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["stages"]
    fig, ax = plt.subplots(figsize=(1.1 * len(rows) + 2, 4))
    bars = ax.bar([r["name"] for r in rows], [r["ms_per_step"] for r in rows], color="#4c72b0")
    ax.set_yscale("log")
    ax.set_ylabel("ms per training step (log scale)")
    ax.set_title(f"microgpt stages: median of {report['repeat']} rounds, {report['python']}")
    for bar, r in zip(bars, rows):
        label = fmt_speedup(r["speedup_vs_baseline"])
        ax.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=120)
    plt.close(fig)
    return out.getvalue()


# ---------------------------------------------------------------------------------------
# command line


def bench_parser():
    p = ArgumentParser(
        prog="python -m microgpt bench",
        description="Time the stages side by side (interleaved rounds, medians) and print a table.",
    )
    p.add_argument(
        "--stages",
        type=parse_stage_list,
        default=None,
        metavar="A,B,...",
        help="stages to measure (default: every in-chain stage that can run here)",
    )
    p.add_argument(
        "--steps",
        type=whole_number(1, FULL_STEPS),
        default=DEFAULT_STEPS,
        help=f"training steps timed per stage, on the same names for all (default {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=DEFAULT_REPEAT,
        help=f"interleaved rounds; figures are medians (default {DEFAULT_REPEAT})",
    )
    p.add_argument(
        "--samples",
        type=count,
        default=DEFAULT_SAMPLES,
        help=f"names sampled per timing (default {DEFAULT_SAMPLES}; 0 skips sampling)",
    )
    p.add_argument(
        "--data", metavar="PATH", type=input_file, help="names file (default: as for training)"
    )
    p.add_argument(
        "--json", metavar="PATH", type=output_file, help="write the results as JSON here"
    )
    p.add_argument(
        "--markdown", metavar="PATH", type=output_file, help="write the markdown table here"
    )
    p.add_argument(
        "--update-readme",
        metavar="PATH",
        type=output_file,
        help=f"replace the table between {README_START} and {README_END} in this file",
    )
    p.add_argument(
        "--plot", metavar="PATH", type=output_file, help="write a bar chart here (needs matplotlib)"
    )
    return p


def check_outputs(args, parser):
    """Catch unusable outputs before minutes of measuring, not after (paths: `output_file`)."""
    outputs = {
        "--json": args.json,
        "--markdown": args.markdown,
        "--plot": args.plot,
        "--update-readme": args.update_readme,
    }
    clash = check_distinct_paths(outputs, {"--data": args.data})
    if clash:
        parser.error(clash)
    if args.update_readme:
        path = Path(args.update_readme)
        if not path.is_file():
            parser.error(f"--update-readme {path}: no such file")
        try:
            replace_between_markers(read_readme(path), "", path)
        except BenchError as e:
            parser.error(f"--update-readme {e}")
    if args.plot and find_spec("matplotlib") is None:
        raise BenchError("--plot needs matplotlib; install it with: pip install matplotlib")


def read_readme(path):
    """The text of the file --update-readme names, or a `BenchError` saying why not."""
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as e:
        raise BenchError(f"{path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise BenchError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None


def write_output(flag, path, data):
    try:
        files.write_atomic(path, data)
    except OSError as e:  # a full disk, a folder gone meanwhile: the old file is intact
        raise BenchError(f"{flag} {path}: not written ({e.strerror or e})") from None


def bench(args, argv, log):
    """Measure, print the table, write the files; returns the report."""
    names = args.stages or default_stages()
    modules = load_modules(names)
    dataset = load_dataset(args.data)
    docs = dataset.docs
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "names.txt"  # the memory subprocesses read the very same names
        data_path.write_text("\n".join(docs) + "\n", encoding="utf-8")
        results = run_bench(
            names, modules, docs, args.steps, args.repeat, args.samples, data_path, log
        )
    report = {
        "stages": summarize(results, docs, args.steps),
        "python": python_description(),
        "machine": machine_description(),
        "steps": args.steps,
        "repeat": args.repeat,
        "samples": args.samples,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "data": dataset.source,
        "full_run_steps": FULL_STEPS,
        "memory": MEMORY_NOTE,
        "command": " ".join(["python -m microgpt bench", *argv]),
    }
    if args.json:
        write_output("--json", args.json, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    markdown = render_markdown(report)
    if args.markdown:
        write_output("--markdown", args.markdown, markdown.encode("utf-8"))
    if args.update_readme:
        path = Path(args.update_readme)
        text = replace_between_markers(read_readme(path), markdown, path)
        write_output("--update-readme", path, text.encode("utf-8"))
    if args.plot:
        write_output("--plot", args.plot, render_plot(report))
    Output()(render_text(report), end="")  # last: the files are written if stdout is closed
    return report


def main(argv):
    """Entry point of `python -m microgpt bench`; returns the exit code."""
    argv = list(argv)
    parser = bench_parser()
    args = parser.parse_args(argv)

    def measure():
        check_outputs(args, parser)
        bench(args, argv, lambda msg: print(msg, file=sys.stderr, flush=True))

    return run_command("microgpt bench", measure)


__all__ = ["main", "render_markdown", "render_text", "replace_between_markers"]
