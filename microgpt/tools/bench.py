"""`python -m microgpt bench`: every stage timed side by side, in one process.

Timings on a shared machine drift by tens of percent from second to second, so the
stages run interleaved (A B C ... C B A ...) and each figure is a median over rounds.
Each round's steps are timed in chunks of a few steps and the median is taken per
chunk, so a slow second spoils one chunk of one round, not a whole round. The
speed-ups are ratios of CPU time, which moves much less with other programs' load
than wall time; the table prints each stage's spread over the rounds, and marks a
ratio whose two stages' rounds overlap (`~`): that difference is within the noise.

Every timing trains a fresh seed-42 model on the same first documents of the
shuffled dataset, with the learning-rate schedule of the full run, so all stages do
the same work; fast stages repeat it within a round until a time budget is spent.
Every stage is warmed up first (imports, caches, a compiler's first call). Only one
stage's model is alive while it is timed: the cyclic collector walks every live
object, so models of other stages would slow the stages that leave it on. Peak
memory is the peak RSS of a separate process per stage (one process keeps the memory
of every stage it has run).

`--record PATH` writes the benchmark of record (JSON: the command, the machine, per
stage the medians, rounds, spread and ratios); the README's table is its rendering
(`render_markdown`), and `--from-record PATH` renders a record again without measuring.
"""

import argparse
import datetime
import gc
import io
import json
import os
import platform
import random
import shlex
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
from ..errors import MicrogptError, single_line
from ..sampling import iter_names
from ..train import Run, create_model
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
CHUNK_STEPS = 5  # steps timed together: the unit of the per-chunk median
WARMUP_STEPS = 5  # steps and...
WARMUP_SAMPLES = 2  # ...names each stage runs before any timing
ROUND_BUDGET_S = 0.5  # a fast stage repeats its training within a round until this is spent
SAMPLE_BUDGET_S = 0.25  # and its sampling until this is spent
SEED = 42
RECORD_FORMAT = 1  # bump when the record's keys change meaning
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
MEMORY_NOTE = (
    "peak RSS of one subprocess per stage: the warm-up's steps, one step on the longest name, "
    "sampling"
)
NOISE_MARK = "~"  # before a speed-up whose two stages' rounds overlap


class BenchError(MicrogptError):
    """A benchmark that cannot run; the message says what to do."""


# ---------------------------------------------------------------------------------------
# which stages


def module_present(stage):
    """Whether the stage's module file exists (a registered stage may not be written yet)."""
    return find_spec(stage.module_name) is not None


def why_left_out(stage):
    """Why an in-chain stage cannot run here, or None when it can."""
    missing = stages.missing_requirements(stage)
    if missing:
        pkgs = " ".join(missing)
        return f"needs {pkgs} (pip install {pkgs})"
    if not module_present(stage):
        return f"has no module {stage.module_name} yet"
    return None


def default_stages():
    """Every in-chain stage that can run here, in pass order."""
    return [s.name for s in stages.STAGES if s.in_chain and why_left_out(s) is None]


def left_out_stages():
    """[{name, reason}] of the in-chain stages that `default_stages` leaves out."""
    found = [(s.name, why_left_out(s)) for s in stages.STAGES if s.in_chain]
    return [{"name": name, "reason": reason} for name, reason in found if reason]


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


def load_modules(names, left_out=None):
    """{name: module}, or a `StageError` for the first stage that cannot run here.

    With a `left_out` list, a stage whose module fails to import (one being written)
    is left out with the error as its reason, instead of stopping the whole benchmark.
    """
    modules = {}
    for name in names:
        stage = stages.BY_NAME[name]
        if not stages.missing_requirements(stage) and not module_present(stage):
            raise stages.StageError(
                f"stage {name!r} has no module {stage.module_name}; pick others with --stages"
            )
        try:
            modules[name] = stages.load(name)
        except stages.StageError:
            raise
        except Exception as e:  # a syntax error, a missing name: any failure of the import
            problem = failure(e)
            if left_out is None:
                raise BenchError(f"stage {name!r} cannot be imported ({problem})") from None
            left_out.append({"name": name, "reason": f"fails to import ({problem})"})
    return modules


# ---------------------------------------------------------------------------------------
# measuring


def drop_spare_nodes():
    """Empty the `graph` stage's free list, if that stage is loaded: a pooled stage's
    spare nodes are not the next run's to carry."""
    graph = sys.modules.get("microgpt.stages.graph")
    if graph is not None:
        graph.free_nodes.clear()


@contextmanager
def isolated_gc():
    """A round's collector as in a process of the stage's own: it walks only what the
    round makes. Everything alive before (the other stages' modules: numba's alone are
    tens of thousands of objects, the dataset, this benchmark) is frozen out of its
    walks, and a stage's tuning of the collector is undone afterwards."""
    enabled, threshold, frozen = gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()
    drop_spare_nodes()
    gc.collect()  # the previous stage's garbage is not this stage's cost
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if frozen:  # what the caller froze stays frozen (with whatever else lives now)
            gc.freeze()
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()


def timed_docs(docs, num_steps):
    """The names of the first `num_steps` steps: a names file shorter than that is
    cycled, as training does, so every step is timed and counted."""
    return [docs[i % len(docs)] for i in range(num_steps)]


def weights_rng(docs, seed=SEED):
    """The generator as `Run` leaves it after its shuffle, where the weights are drawn:
    a repeat gets the seed-42 model without shuffling 32,000 names again."""
    rng = random.Random(seed)
    rng.shuffle(list(docs))
    return rng


def time_chunks(model, tokens, chunk=CHUNK_STEPS):
    """([wall s], [CPU s]) of each run of `chunk` consecutive steps, from step 1."""
    wall, cpu = [], []
    for start in range(0, len(tokens), chunk):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for step in range(start, min(start + chunk, len(tokens))):
            model.train_step(tokens[step], step, FULL_STEPS)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


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


@dataclass
class RoundTiming:
    """One round of one stage. A chunk's figure is its share of the round's ms per step
    (its ms over all the round's steps), so the chunks add up to the round's ms/step."""

    wall_chunks: list
    cpu_chunks: list
    sample_ms: float | None
    repeats: int

    @property
    def ms_per_step(self):
        return sum(self.wall_chunks)

    @property
    def cpu_ms_per_step(self):
        return sum(self.cpu_chunks)


def time_round(
    module, docs, num_steps, num_samples, budget=ROUND_BUDGET_S, sample_budget=SAMPLE_BUDGET_S
):
    """One round: `num_steps` steps of fresh seed-42 models, repeated until `budget`
    seconds are spent, then sampling, repeated until `sample_budget` is: a fast stage's
    figure averages many runs instead of resting on a few milliseconds."""
    with isolated_gc():
        run = Run(docs, module, seed=SEED)
        tokens = [run.tokenizer.encode(doc) for doc in timed_docs(run.docs, num_steps)]
        rng = weights_rng(docs)
        state = rng.getstate()
        wall, cpu, repeats, model = None, None, 0, run.model
        while repeats == 0 or sum(wall) < budget:
            if repeats:  # the first repeat trains the run's model, later ones its twin
                rng.setstate(state)
                model = create_model(module, run.tokenizer.vocab_size, rng)
            chunk_wall, chunk_cpu = time_chunks(model, tokens)
            wall = chunk_wall if wall is None else [a + b for a, b in zip(wall, chunk_wall)]
            cpu = chunk_cpu if cpu is None else [a + b for a, b in zip(cpu, chunk_cpu)]
            repeats += 1
        model = None  # sampling keeps only the run's model alive
        per_step = 1000 / (repeats * num_steps)
        wall_chunks, cpu_chunks = [s * per_step for s in wall], [s * per_step for s in cpu]
        if num_samples == 0:
            return RoundTiming(wall_chunks, cpu_chunks, None, repeats)
        sample_s, sample_repeats = 0.0, 0
        while sample_repeats == 0 or sample_s < sample_budget:
            sample_s += time_sampling(run, num_samples)
            sample_repeats += 1
        sample_ms = 1000 * sample_s / (sample_repeats * num_samples)
        return RoundTiming(wall_chunks, cpu_chunks, sample_ms, repeats)


def measure_round(module, docs, num_steps, num_samples, budget=ROUND_BUDGET_S):
    """(ms per step, CPU ms per step, ms per sampled name) of one round (`time_round`)."""
    timing = time_round(module, docs, num_steps, num_samples, budget, min(budget, SAMPLE_BUDGET_S))
    return timing.ms_per_step, timing.cpu_ms_per_step, timing.sample_ms


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
    run = Run(docs, stages.load(stage), seed=SEED)
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


def chunked_median(chunk_rounds, rounds):
    """ms per step: per chunk of steps the median over the rounds, added up.

    A slow second spoils one chunk of one round and the chunk's median drops it; the
    median of whole rounds keeps it whenever slow seconds hit most rounds. Without
    chunks (a caller that timed whole rounds) it is the median of the rounds.
    """
    if not chunk_rounds:
        return statistics.median(rounds)
    num_chunks = len(chunk_rounds[0])
    return sum(statistics.median(r[c] for r in chunk_rounds) for c in range(num_chunks))


@dataclass
class StageResult:
    name: str
    ms_per_step_rounds: list = field(default_factory=list)
    cpu_ms_per_step_rounds: list = field(default_factory=list)
    sample_ms_rounds: list = field(default_factory=list)
    peak_mib: float | None = None
    wall_chunk_rounds: list = field(default_factory=list)  # per round, `RoundTiming` chunks
    cpu_chunk_rounds: list = field(default_factory=list)

    def add(self, timing):
        self.ms_per_step_rounds.append(timing.ms_per_step)
        self.cpu_ms_per_step_rounds.append(timing.cpu_ms_per_step)
        self.sample_ms_rounds.append(timing.sample_ms)
        self.wall_chunk_rounds.append(timing.wall_chunks)
        self.cpu_chunk_rounds.append(timing.cpu_chunks)

    @property
    def ms_per_step(self):
        return chunked_median(self.wall_chunk_rounds, self.ms_per_step_rounds)

    @property
    def cpu_ms_per_step(self):
        return chunked_median(self.cpu_chunk_rounds, self.cpu_ms_per_step_rounds)

    @property
    def sample_ms_per_name(self):
        rounds = [x for x in self.sample_ms_rounds if x is not None]
        return statistics.median(rounds) if rounds else None


def failure(error):
    """An exception as the one-line reason a stage is left out."""
    if isinstance(error, MicrogptError):
        return single_line(str(error))
    return single_line(f"{type(error).__name__}: {error}")


def run_bench(names, modules, docs, num_steps, repeat, num_samples, data_path, log, left_out=None):
    """The results of every stage, measured in `repeat` interleaved rounds.

    The order alternates (A B C, then C B A), so no stage always runs right after the
    same neighbour. A stage that raises is left out with its reason when `left_out` is
    a list (the default stages: one stage being written must not stop the others),
    else the benchmark stops with a `BenchError`.
    """
    results = {name: StageResult(name) for name in names}

    def attempt(name, action, *args):
        try:
            return action(*args)
        except Exception as e:  # any failure of the stage's own code
            reason = f"fails to run ({failure(e)})"
            if left_out is None:
                raise BenchError(f"stage {name!r} {reason}") from None
            log(f"left out: {name} {reason}")
            left_out.append({"name": name, "reason": reason})
            del results[name]
            return None

    warmup_steps, warmup_samples = min(num_steps, WARMUP_STEPS), min(num_samples, WARMUP_SAMPLES)
    for name in names:  # imports, caches, a compiler's first call: never in a timed round
        attempt(name, time_round, modules[name], docs, warmup_steps, warmup_samples, 0, 0)
    for r in range(repeat):
        order = list(results) if r % 2 == 0 else list(reversed(results))
        for name in order:
            timing = attempt(name, time_round, modules[name], docs, num_steps, num_samples)
            if timing is not None:
                results[name].add(timing)
        figures = ", ".join(f"{n} {x.cpu_ms_per_step_rounds[-1]:.3g}" for n, x in results.items())
        log(f"round {r + 1}/{repeat} (CPU ms/step): {figures}")
    for name in list(results):
        # the longest name's step makes the peak: the other steps only add minutes
        peak = attempt(name, measure_peak_mib, name, data_path, warmup_steps, num_samples)
        if name in results:
            results[name].peak_mib = peak
            if peak is not None:
                log(f"peak RSS {name}: {peak:.1f} MiB")
    if not results:
        raise BenchError("no stage ran; see the lines above for why")
    return list(results.values())


def quartiles(rounds):
    """(first, third) quartile of two or more rounds: the middle half, which one odd
    round (a burst of load) cannot stretch the way it stretches (min, max)."""
    q1, _, q3 = statistics.quantiles(rounds, n=4, method="inclusive")
    return q1, q3


def spread(rounds):
    """Interquartile range / median of the rounds: how far apart the same measurement
    lands; None from one round, which says nothing about the noise."""
    if len(rounds) < 2:
        return None
    q1, q3 = quartiles(rounds)
    return (q3 - q1) / statistics.median(rounds)


def overlap(a, b):
    """Whether the middle halves of two stages' rounds overlap (the difference is noise);
    None when either has one round."""
    if len(a) < 2 or len(b) < 2:
        return None
    (a1, a3), (b1, b3) = quartiles(a), quartiles(b)
    return a1 <= b3 and b1 <= a3


def summarize(results, docs, num_steps):
    """Result rows with speed-ups and full-run estimates, as they go into the record.

    The speed-ups of record are ratios of CPU time (`cpu_speedup_*`): CPU time adds up
    every thread's, so a threaded stage looks slower than it is, but no stage in the
    chain has threads, and it moves far less than wall time when the machine is busy.
    """
    baseline = next((r for r in results if r.name == "baseline"), None)
    scale = full_run_scale(docs, num_steps)
    rows, previous = [], None
    for r in results:
        ms, cpu_ms, sample_ms = r.ms_per_step, r.cpu_ms_per_step, r.sample_ms_per_name
        compared = baseline is not None and r is not baseline
        rows.append(
            {
                "name": r.name,
                "summary": stages.BY_NAME[r.name].summary,
                "previous": previous.name if previous else None,  # what "vs previous" is vs
                "ms_per_step": ms,
                "cpu_ms_per_step": cpu_ms,
                "spread": spread(r.cpu_ms_per_step_rounds),
                "wall_spread": spread(r.ms_per_step_rounds),
                "cpu_speedup_vs_baseline": baseline.cpu_ms_per_step / cpu_ms if baseline else None,
                "cpu_speedup_vs_previous": previous.cpu_ms_per_step / cpu_ms if previous else None,
                "noise_vs_baseline": (
                    overlap(r.cpu_ms_per_step_rounds, baseline.cpu_ms_per_step_rounds)
                    if compared
                    else None
                ),
                "noise_vs_previous": (
                    overlap(r.cpu_ms_per_step_rounds, previous.cpu_ms_per_step_rounds)
                    if previous
                    else None
                ),
                "speedup_vs_baseline": baseline.ms_per_step / ms if baseline else None,
                "speedup_vs_previous": previous.ms_per_step / ms if previous else None,
                "sample_ms_per_name": sample_ms,
                "peak_mib": r.peak_mib,
                # what a quiet machine takes: CPU time, with sampling's wall time
                "est_full_run_s": cpu_ms * scale * FULL_STEPS / 1000
                + (sample_ms or 0) * DEFAULT_SAMPLES / 1000,
                "ms_per_step_rounds": r.ms_per_step_rounds,
                "cpu_ms_per_step_rounds": r.cpu_ms_per_step_rounds,
                "sample_ms_rounds": r.sample_ms_rounds,
                "wall_chunk_rounds": r.wall_chunk_rounds,
                "cpu_chunk_rounds": r.cpu_chunk_rounds,
            }
        )
        previous = r
    return rows


def full_run_scale(docs, num_steps):
    """Token positions per step of the full run over those of the timed steps (about 1)."""
    shuffled = list(docs)
    random.Random(SEED).shuffle(shuffled)  # Run's order: the same seed, the same first call
    full = [shuffled[i % len(shuffled)] for i in range(FULL_STEPS)]
    timed = timed_docs(shuffled, num_steps)
    return (num_positions(full) / FULL_STEPS) / (num_positions(timed) / num_steps)


def load_average():
    """The 1-minute load average, or None where the system has none (Windows, Pyodide)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


# ---------------------------------------------------------------------------------------
# reporting: every table is rendered from a report, and the record is a report


def machine_description():
    cpus = os.cpu_count()
    processor = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs ({processor})"


def python_description():
    gil = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "with GIL"
    return f"{platform.python_implementation()} {platform.python_version()} ({gil})"


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def fmt_ms(value):
    return fmt(value, ".3g" if (value or 0) < 1 else ".1f")


def fmt_seconds(value):
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def fmt_speedup(value, noise=False):
    """`27.2x`; `~1.0x` when the two stages' rounds overlap (within the noise)."""
    if value is None:
        return "-"
    mark = NOISE_MARK if noise else ""
    return f"{mark}{value:.0f}x" if value >= 100 else f"{mark}{value:.1f}x"


def fmt_percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


TABLE_COLUMNS = (
    "stage",
    "ms/step",
    "CPU ms/step",
    "spread",
    "vs baseline",
    "vs previous",
    "sample ms/name",
    "peak RSS MiB",
    "est. 1000 steps",
)


def table_cells(row):
    """The row's cells as the tables show them, in `TABLE_COLUMNS` order."""
    return (
        row["name"],
        fmt_ms(row["ms_per_step"]),
        fmt_ms(row["cpu_ms_per_step"]),
        fmt_percent(row["spread"]),
        fmt_speedup(row["cpu_speedup_vs_baseline"], row["noise_vs_baseline"]),
        fmt_speedup(row["cpu_speedup_vs_previous"], row["noise_vs_previous"]),
        fmt_ms(row["sample_ms_per_name"]),
        fmt(row["peak_mib"], ".1f"),
        fmt_seconds(row["est_full_run_s"]),
    )


def method_note(report):
    """How the figures were measured, from the report itself (a record renders its own)."""
    chunk = report.get("chunk_steps")
    chunks = f" ({chunk}-step chunks)" if chunk and report["steps"] > chunk else ""
    sampling = f"sampling {report['samples']} names" if report["samples"] else "no sampling"
    return (
        f"median of {report['repeat']} interleaved rounds{chunks}, each training steps "
        f"1-{report['steps']} of the seed-42 run from scratch; speed-ups are ratios of CPU "
        f"time, {NOISE_MARK} where the middle halves of the two stages' rounds overlap (within "
        "the noise); spread: interquartile range / median of the rounds' CPU time; "
        f"{sampling}; {report.get('memory', MEMORY_NOTE)}"
    )


def context_note(report):
    """Python, machine, load and date: what a figure was measured on and when."""
    load = report.get("load") or {}
    busy = ""
    if load.get("start") is not None and load.get("end") is not None:
        busy = f", load average {load['start']:.1f} at the start and {load['end']:.1f} at the end"
    names = " (on the built-in fallback names, not makemore's)" if report.get("fallback") else ""
    return f"{report['python']} on {report['machine']}{busy}, {report['date']}{names}"


def left_out_note(report):
    """The stages the report does not measure, each with why."""
    items = report.get("left_out") or []
    return "; ".join(f"`{item['name']}` {item['reason']}" for item in items)


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
    lines.append(context_note(report))
    lines.append(method_note(report))
    if left_out_note(report):
        lines.append(f"not measured: {left_out_note(report)}")
    return "\n".join(lines) + "\n"


def render_markdown(report):
    """The table for the README, with the command that made it: the record's rendering."""
    lines = [
        "| " + " | ".join(TABLE_COLUMNS) + " | what the pass changes |",
        "|" + "|".join([":---"] + ["---:"] * (len(TABLE_COLUMNS) - 1)) + "|:---|",
    ]
    for row in report["stages"]:
        cells = list(table_cells(row))
        cells[0] = f"`{cells[0]}`"
        cells.append(row["summary"])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Generated by `{report['command']}`: {method_note(report)}."]
    lines.append(f"{context_note(report)}.")
    if left_out_note(report):
        lines.append(f"Not measured: {left_out_note(report)}.")
    return "\n".join(lines) + "\n"


def between_markers(text, where):
    """(start, end) of the text between the bench markers, or a `BenchError`."""
    start = text.find(README_START)
    end = text.find(README_END, start + len(README_START)) if start >= 0 else -1
    if end < 0:
        raise BenchError(
            f"{where}: no {README_START} ... {README_END} markers; add them where the table goes"
        )
    return start + len(README_START), end


def replace_between_markers(text, table, where):
    """`text` with the part between the bench markers replaced by `table`; the rest as it was."""
    start, end = between_markers(text, where)
    return text[:start] + "\n" + table + text[end:]


def table_in(text, where):
    """The table between the bench markers of `text`, as `replace_between_markers` put it."""
    start, end = between_markers(text, where)
    return text[start:end].removeprefix("\n")


def render_plot(report):
    """PNG bytes of a bar chart of CPU ms/step per stage (log scale, speed-ups on the bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["stages"]
    fig, ax = plt.subplots(figsize=(1.1 * len(rows) + 2, 4))
    bars = ax.bar([r["name"] for r in rows], [r["cpu_ms_per_step"] for r in rows], color="#4c72b0")
    ax.set_yscale("log")
    ax.set_ylabel("CPU ms per training step (log scale)")
    ax.set_title(f"microgpt stages: median of {report['repeat']} rounds, {report['python']}")
    for bar, r in zip(bars, rows):
        label = fmt_speedup(r["cpu_speedup_vs_baseline"], r["noise_vs_baseline"])
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
# the record: one JSON file, written by --record, read by --from-record and the book

RECORD_KEYS = ("record_format", "command", "python", "machine", "date", "steps", "repeat")
RECORD_KEYS += ("samples", "stages")
ROW_KEYS = ("name", "summary", "ms_per_step", "cpu_ms_per_step", "spread")
ROW_KEYS += ("cpu_speedup_vs_baseline", "cpu_speedup_vs_previous", "noise_vs_baseline")
ROW_KEYS += ("noise_vs_previous", "sample_ms_per_name", "peak_mib", "est_full_run_s")


def read_text(path):
    """The UTF-8 text of `path`, or a `BenchError` saying why not."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file") from None
    except OSError as e:
        raise BenchError(f"{path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise BenchError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None


def read_record(path):
    """The record at `path`, checked enough to render, or a `BenchError` saying why not."""
    text = read_text(path)
    try:
        record = json.loads(text)
    except ValueError as e:
        raise BenchError(f"{path}: not JSON ({e})") from None
    again = "; make a new one with: make readme-table"
    if not isinstance(record, dict) or record.get("record_format") != RECORD_FORMAT:
        raise BenchError(f"{path}: not a benchmark record of format {RECORD_FORMAT}{again}")
    missing = [key for key in RECORD_KEYS if key not in record]
    rows = record.get("stages")
    if not missing and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
        missing = ["stages"]
    for row in rows if not missing else []:
        missing += [f"stages/{row.get('name', '?')}/{key}" for key in ROW_KEYS if key not in row]
    if missing:
        raise BenchError(f"{path}: the record has no {missing[0]!r}{again}")
    try:  # a value of the wrong type (a hand edit): found here, before any file is written
        render_markdown(record)
        render_text(record)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        problem = single_line(f"{type(e).__name__}: {e}")
        raise BenchError(f"{path}: the record cannot be rendered ({problem}){again}") from None
    return record


def record_bytes(report):
    """The record as its file holds it."""
    return (json.dumps(report, indent=2) + "\n").encode("utf-8")


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
        help=f"training steps timed per stage, on the same names for all (default {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        help=f"interleaved rounds; figures are medians (default {DEFAULT_REPEAT})",
    )
    p.add_argument(
        "--samples",
        type=count,
        help=f"names sampled per timing (default {DEFAULT_SAMPLES}; 0 skips sampling)",
    )
    files = [  # (flag, checked as, help): every file flag takes a PATH
        ("--data", input_file, "names file (default: as for training)"),
        (
            "--record",
            output_file,
            "write the benchmark of record here (JSON; the README's table is its rendering)",
        ),
        (
            "--from-record",
            input_file,
            "measure nothing: render the tables and files from this record",
        ),
        ("--json", output_file, "write the results as JSON here"),
        ("--markdown", output_file, "write the markdown table here"),
        (
            "--update-readme",
            output_file,
            f"replace the table between {README_START} and {README_END} in this file",
        ),
        ("--plot", output_file, "write a bar chart here (needs matplotlib)"),
    ]
    for flag, checked_as, help_text in files:
        p.add_argument(flag, metavar="PATH", type=checked_as, help=help_text)
    return p


MEASURING_FLAGS = {"--stages": "stages", "--steps": "steps", "--repeat": "repeat"}
MEASURING_FLAGS |= {"--samples": "samples", "--data": "data"}


def check_flags(args, parser):
    """Measuring flags mean nothing to --from-record; elsewhere their defaults fill in."""
    if args.from_record:
        given = [flag for flag, key in MEASURING_FLAGS.items() if getattr(args, key) is not None]
        if given:
            parser.error(f"--from-record measures nothing; {given[0]} does not go with it")
    args.steps = DEFAULT_STEPS if args.steps is None else args.steps
    args.repeat = DEFAULT_REPEAT if args.repeat is None else args.repeat
    args.samples = DEFAULT_SAMPLES if args.samples is None else args.samples


def check_outputs(args, parser):
    """Catch unusable outputs before minutes of measuring, not after (paths: `output_file`)."""
    outputs = {
        "--record": args.record,
        "--json": args.json,
        "--markdown": args.markdown,
        "--plot": args.plot,
        "--update-readme": args.update_readme,
    }
    clash = check_distinct_paths(outputs, {"--data": args.data, "--from-record": args.from_record})
    if clash:
        parser.error(clash)
    if args.update_readme:
        try:
            between_markers(read_text(args.update_readme), args.update_readme)
        except BenchError as e:
            parser.error(f"--update-readme {e}")
    if args.plot and find_spec("matplotlib") is None:
        raise BenchError("--plot needs matplotlib; install it with: pip install matplotlib")


def write_output(flag, path, data):
    try:
        files.write_atomic(path, data)
    except OSError as e:  # a full disk, a folder gone meanwhile: the old file is intact
        raise BenchError(f"{flag} {path}: not written ({e.strerror or e})") from None


def write_reports(args, report):
    """The files the flags ask for, then the table on stdout; all rendered from `report`.

    Everything is rendered before the first file is written, so a failure leaves every
    file as it was; each file is written whole or not at all (`files.write_atomic`).
    """
    markdown = render_markdown(report)
    outputs = [
        (flag, path, record_bytes(report))
        for flag, path in (("--record", args.record), ("--json", args.json))
        if path
    ]
    if args.markdown:
        outputs.append(("--markdown", args.markdown, markdown.encode("utf-8")))
    if args.update_readme:
        path = args.update_readme
        text = replace_between_markers(read_text(path), markdown, path)
        outputs.append(("--update-readme", path, text.encode("utf-8")))
    if args.plot:
        outputs.append(("--plot", args.plot, render_plot(report)))
    text = render_text(report)
    for flag, path, data in outputs:
        write_output(flag, path, data)
    Output()(text, end="")  # last: the files are written if stdout is closed


def bench(args, argv, log):
    """Measure, print the table, write the files; returns the report (the record).

    The stages named by --stages must all run; of the default ones, a stage that cannot
    (a missing package, a module being written) is left out and the record says why.
    """
    left_out = None if args.stages else left_out_stages()
    modules = load_modules(args.stages or default_stages(), left_out)
    for item in left_out or []:
        log(f"left out: {item['name']} {item['reason']}")
    names = list(modules)
    if not names:
        raise BenchError("no stage can run here; see the lines above for why")
    dataset = load_dataset(args.data)
    docs = dataset.docs
    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "names.txt"  # the memory subprocesses read the very same names
        data_path.write_text("\n".join(docs) + "\n", encoding="utf-8")
        results = run_bench(
            names, modules, docs, args.steps, args.repeat, args.samples, data_path, log, left_out
        )
    load = {"start": load_start, "end": load_average(), "cpus": os.cpu_count()}
    report = {
        "record_format": RECORD_FORMAT,
        "command": f"python -m microgpt bench {shlex.join(argv)}".rstrip(),
        "python": python_description(),
        "machine": machine_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load": load,
        "steps": args.steps,
        "repeat": args.repeat,
        "samples": args.samples,
        "chunk_steps": CHUNK_STEPS,
        "warmup": {
            "steps": min(args.steps, WARMUP_STEPS),
            "samples": min(args.samples, WARMUP_SAMPLES),
        },
        "round_budget_s": ROUND_BUDGET_S,
        "sample_budget_s": SAMPLE_BUDGET_S,
        "timers": {"wall": "time.perf_counter", "cpu": "time.process_time"},
        "data": dataset.source,
        "fallback": dataset.is_fallback,
        "full_run_steps": FULL_STEPS,
        "memory": MEMORY_NOTE,
        "left_out": left_out or [],
        "stages": summarize(results, docs, args.steps),
    }
    if dataset.is_fallback:
        log("note: measured on the built-in fallback names; for the record, pass --data")
    busiest = max((x for x in (load["start"], load["end"]) if x is not None), default=0)
    if load["cpus"] and busiest > load["cpus"]:
        log(
            f"note: the machine was busy (load average {busiest:.1f} on {load['cpus']} CPUs): "
            "ratios shift under load; for the record, measure on a quiet machine"
        )
    report = json.loads(record_bytes(report))  # render exactly what the record holds
    write_reports(args, report)
    return report


def main(argv):
    """Entry point of `python -m microgpt bench`; returns the exit code."""
    argv = list(argv)
    parser = bench_parser()
    args = parser.parse_args(argv)
    check_flags(args, parser)

    def measure():
        check_outputs(args, parser)
        if not args.from_record:
            bench(args, argv, lambda msg: print(msg, file=sys.stderr, flush=True))
            return
        try:
            record = read_record(args.from_record)
        except BenchError as e:  # exit 1, as a bad checkpoint for --load
            raise BenchError(f"--from-record {e}") from None
        write_reports(args, record)

    return run_command("microgpt bench", measure)


__all__ = ["main", "read_record", "render_markdown", "render_text", "replace_between_markers"]
