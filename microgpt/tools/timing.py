"""Stages timed side by side: the one interleaved-rounds loop of the benchmark command,
the book's helpers, the chapters and the browser benchmark.

Timings on a shared machine drift by tens of percent from second to second, so the
things compared run interleaved (A B C ... C B A ...) and each figure is a median
over rounds (`interleave`). Each round's steps are timed in chunks of a few steps and
the median is taken per chunk, so a slow second spoils one chunk of one round, not a
whole round. CPU time moves much less with other programs' load than wall time; the
spread of the rounds says how far apart the same measurement lands, and two stages
whose rounds overlap differ within the noise.

Every round trains a fresh seed-42 model on the same first documents of the shuffled
dataset, with the learning-rate schedule of the full run, so all stages do the same
work; fast stages repeat it within a round until a time budget is spent. Every stage
is warmed up first (imports, caches, a compiler's first call). Only one stage's model
is alive while it is timed, and each round's collector walks only what the round
makes (`isolated_gc`). Peak memory is the peak RSS of a separate process per stage
(one process keeps the memory of every stage it has run).
"""

import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import stages
from ..arguments import checked, function, instance, number, optional, whole
from ..config import GPTConfig
from ..data import Tokenizer, load_dataset, names
from ..errors import MicrogptError, os_problem, single_line
from ..model import init_weights
from ..sampling import iter_names
from ..stages import graph
from ..train import Run, shuffled, stage_module, step_docs

FULL_STEPS = 1000  # the run the estimates are for: microgpt's
FULL_SAMPLES = 20  # and the names it prints
CHUNK_STEPS = 5  # steps timed together: the unit of the per-chunk median
WARMUP_STEPS = 5  # steps and...
WARMUP_SAMPLES = 2  # ...names each stage runs before any timing
ROUND_BUDGET_S = 0.5  # a fast stage repeats its training within a round until this is spent
SAMPLE_BUDGET_S = 0.25  # and its sampling until this is spent
SEED = 42


class BenchError(MicrogptError):
    """A benchmark that cannot run; the message says what to do."""


# ---------------------------------------------------------------------------------------
# which stages


def default_stages():
    """Every in-chain stage that can run here, in pass order."""
    return [s.name for s in stages.STAGES if s.in_chain and stages.why_not_runnable(s) is None]


def left_out_stages():
    """[{name, reason}] of the in-chain stages that `default_stages` leaves out."""
    found = [(s.name, stages.why_not_runnable(s)) for s in stages.STAGES if s.in_chain]
    return [{"name": name, "reason": reason} for name, reason in found if reason]


def failure(error):
    """An exception as the one-line reason a stage is left out."""
    if isinstance(error, MicrogptError):
        return single_line(str(error))
    return single_line(f"{type(error).__name__}: {error}")


def machine_problem(error):
    """A `BenchError` for an `OSError` a stage's run met: the machine's limits (too few file
    descriptors, a full disk), not the stage, so the benchmark stops saying which."""
    return BenchError(f"the benchmark cannot go on: {os_problem(error)}")


def load_modules(stage_names, left_out=None):
    """{name: module}, or a `StageError` for the first stage that cannot run here.

    With a `left_out` list, a stage whose module fails to import (one being written)
    is left out with the error as its reason, instead of stopping the whole benchmark.
    """
    modules = {}
    for name in stage_names:
        stage = stages.BY_NAME[name]
        if not stages.missing_requirements(stage) and stages.why_not_runnable(stage):
            raise stages.StageError(
                f"stage {name!r} has no module {stage.module_name}; pick others with --stages"
            )
        try:
            modules[name] = stages.load(name)
        except Exception as e:  # a broken package, a syntax error: any failure of the import
            if left_out is None and isinstance(e, stages.StageError):
                raise
            problem = failure(e)
            if left_out is None:
                raise BenchError(f"stage {name!r} cannot be imported ({problem})") from None
            left_out.append({"name": name, "reason": f"fails to import ({problem})"})
    return modules


# ---------------------------------------------------------------------------------------
# the loop


# seconds to wait, untimed, before a subject that may follow another's thread pool: an
# OpenBLAS thread spins on its core after its last product (for 2**28 cycles by default,
# its THREAD_TIMEOUT) before it sleeps, and PyTorch's threads then share the cores with it
SETTLE_S = 0.3


@checked(
    subjects=instance(dict),
    rounds=whole(0),
    measure=function,
    on_error=optional(function),
    after_round=optional(function),
    settle_s=number(0, 60),
)
def interleave(subjects, rounds, measure, on_error=None, after_round=None, settle_s=0.0):
    """{name: [what `measure(subject)` returned, round by round]} of every subject of
    `subjects` ({name: subject}), measured once per round for `rounds` rounds.

    The order alternates (A B C, then C B A), so no subject always runs right after
    the same neighbour, and a busy minute slows them all alike. `settle_s` seconds
    pass before each measurement, untimed, so that the threads the last subject left
    spinning are asleep (`SETTLE_S`, where subjects run thread pools). A `measure` that
    raises stops the loop; with `on_error(name, error)`, that subject is dropped
    (rounds and all) and the others go on. `after_round(index, results)` runs after
    each round (a progress line).
    """
    live = dict(subjects)
    results = {name: [] for name in live}
    for r in range(rounds):
        for name in list(live) if r % 2 == 0 else list(reversed(live)):
            if settle_s:  # never a call otherwise: Pyodide's sleep needs stack switching
                time.sleep(settle_s)
            try:
                results[name].append(measure(live[name]))
            except Exception as e:  # any failure of the subject's own code
                if on_error is None:
                    raise
                on_error(name, e)
                del live[name], results[name]
        if after_round is not None:
            after_round(r, results)
    return results


# ---------------------------------------------------------------------------------------
# one round


@contextmanager
def isolated_gc():
    """A round's collector as in a process of the stage's own: it walks only what the
    round makes. Everything alive before (the other stages' modules: numba's alone are
    tens of thousands of objects, the dataset, the caller's objects) is frozen out of
    its walks, the `graph` stage's spare nodes are let go (they are not the next run's
    to carry), and a stage's tuning of the collector is undone afterwards."""
    enabled, threshold, frozen = gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()
    graph.empty_pool()
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


@contextmanager
def collector_running(running):
    """The cyclic collector as asked during the steps: `running` False switches it off
    (a stage that pauses it itself, `gc`, then finds it off and leaves it so). No stage's
    graph has cycles, so nothing piles up; the round's end collects anyway."""
    enabled = gc.isenabled()
    if not running:
        gc.disable()
    try:
        yield
    finally:
        (gc.enable if enabled else gc.disable)()


def time_chunks(model, tokens, chunk=CHUNK_STEPS, collector=True):
    """([wall s], [CPU s]) of each run of `chunk` consecutive steps, from step 1; with the
    collector off during the steps where `collector` is False."""
    wall, cpu = [], []
    with collector_running(collector):
        for start in range(0, len(tokens), chunk):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for step in range(start, min(start + chunk, len(tokens))):
                model.train_step(tokens[step], step, FULL_STEPS)
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def time_sampling(run, num_samples):
    """Seconds to draw `num_samples` names; the rng is rewound so repeats draw the same.

    The names are drawn one by one and dropped: a million names take long, but no memory.
    """
    state = run.rng.getstate()
    start = time.perf_counter()
    for _ in iter_names(run.model, run.tokenizer, run.rng, num_samples):
        pass
    elapsed = time.perf_counter() - start
    run.rng.setstate(state)
    return elapsed


def time_steps(step, count):
    """([wall s], [CPU s]) of each of `count` calls of `step()`: a run's steps timed one by one
    (a data-parallel run's, whose processes must all train the same steps)."""
    wall, cpu = [], []
    for _ in range(count):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


@dataclass
class RoundTiming:
    """One round of one stage. A chunk's figure is its share of the round's ms per step
    (its ms over all the round's steps), so the chunks add up to the round's ms/step.
    `off_*_chunks`: the same steps with the collector off, where the round measured them."""

    wall_chunks: list
    cpu_chunks: list
    sample_ms: float | None
    repeats: int
    off_wall_chunks: list | None = None
    off_cpu_chunks: list | None = None

    @property
    def ms_per_step(self):
        return sum(self.wall_chunks)

    @property
    def cpu_ms_per_step(self):
        return sum(self.cpu_chunks)


# a round's budgets: 0 is one repeat; an hour is more than any figure needs
BUDGET = number(0, 3600)


@checked(
    module=stage_module,
    docs=names,
    num_steps=whole(1, FULL_STEPS),
    num_samples=whole(0, 10_000),
    budget=BUDGET,
    sample_budget=BUDGET,
    collector_off=instance(bool),
    off_first=instance(bool),
)
def time_round(
    module,
    docs,
    num_steps,
    num_samples,
    budget=ROUND_BUDGET_S,
    sample_budget=SAMPLE_BUDGET_S,
    collector_off=False,
    off_first=False,
):
    """One round: `num_steps` steps of fresh seed-42 models, repeated until `budget`
    seconds are spent, then sampling, repeated until `sample_budget` is: a fast stage's
    figure averages many runs instead of resting on a few milliseconds.

    With `collector_off`, each repeat is timed twice, with the collector running and off
    during the steps, in turns (off first where `off_first`: rounds take turns, so that
    neither setting always runs second), each until it has spent `budget`.
    """
    settings = [True, False] if collector_off else [True]
    if off_first:
        settings.reverse()
    with isolated_gc():
        run = Run(docs, module, seed=SEED)
        tokens = [run.tokenizer.encode(doc) for doc in step_docs(run.docs, num_steps)]
        chunks = [0.0] * -(-len(tokens) // CHUNK_STEPS)
        timed = {running: (chunks, chunks, 0) for running in settings}
        first = run.model  # the first repeat trains the run's model (sampling's), later its twins
        while any(repeats == 0 or sum(wall) < budget for wall, _, repeats in timed.values()):
            for running in settings:
                wall, cpu, repeats = timed[running]
                if repeats and sum(wall) >= budget:
                    continue
                model, first = first or run.fresh_model(), None
                chunk_wall, chunk_cpu = time_chunks(model, tokens, collector=running)
                model = None  # one timed model alive at a time, besides the run's
                timed[running] = (add(wall, chunk_wall), add(cpu, chunk_cpu), repeats + 1)
        timing = RoundTiming(*ms_per_step_chunks(*timed[True], len(tokens)), None, timed[True][2])
        if collector_off:
            timing.off_wall_chunks, timing.off_cpu_chunks = ms_per_step_chunks(
                *timed[False], len(tokens)
            )
        if num_samples == 0:
            return timing
        sample_s, sample_repeats = 0.0, 0
        while sample_repeats == 0 or sample_s < sample_budget:
            sample_s += time_sampling(run, num_samples)
            sample_repeats += 1
        timing.sample_ms = 1000 * sample_s / (sample_repeats * num_samples)
        return timing


def add(a, b):
    return [x + y for x, y in zip(a, b)]


def ms_per_step_chunks(wall, cpu, repeats, num_steps):
    """Seconds per chunk over `repeats` repeats as ms per step of the round (`RoundTiming`)."""
    per_step = 1000 / (repeats * num_steps)
    return [s * per_step for s in wall], [s * per_step for s in cpu]


# ---------------------------------------------------------------------------------------
# stages side by side


def chunked_median(chunk_rounds, num_chunks=None):
    """ms per step: per chunk of steps the median over the rounds, added up (of the first
    `num_chunks` chunks only, where given: their share of the round's ms per step).

    A slow second spoils one chunk of one round and the chunk's median drops it; the
    median of whole rounds keeps it whenever slow seconds hit most rounds.
    """
    num_chunks = len(chunk_rounds[0]) if num_chunks is None else num_chunks
    return sum(statistics.median(r[c] for r in chunk_rounds) for c in range(num_chunks))


WINDOWS = (20, 50, 100)  # the windows (steps from step 1) whose ratios the record compares


def windows_of(num_steps, chunk=CHUNK_STEPS):
    """The windows a run of `num_steps` steps holds whole chunks of: `WINDOWS` up to it,
    and itself."""
    fitting = [w for w in WINDOWS if w < num_steps and w % chunk == 0]
    return [*fitting, num_steps]


def window_ms(chunk_rounds, num_steps, window, chunk=CHUNK_STEPS):
    """ms per step over steps 1-`window` of rounds of `num_steps` steps: the chunks'
    medians as in `chunked_median`, per step of the window. The collector's cycles and
    the names' lengths differ from window to window; the record compares them."""
    share = chunked_median(chunk_rounds, -(-window // chunk))
    return share * num_steps / window


@dataclass
class StageResult:
    """The rounds of one stage, and its figures: medians over the rounds."""

    name: str
    ms_per_step_rounds: list = field(default_factory=list)
    cpu_ms_per_step_rounds: list = field(default_factory=list)
    sample_ms_rounds: list = field(default_factory=list)
    peak_mib: float | None = None
    wall_chunk_rounds: list = field(default_factory=list)  # per round, `RoundTiming` chunks
    cpu_chunk_rounds: list = field(default_factory=list)
    off_wall_chunk_rounds: list = field(default_factory=list)  # the same, collector off
    off_cpu_chunk_rounds: list = field(default_factory=list)

    def add(self, timing):
        self.ms_per_step_rounds.append(timing.ms_per_step)
        self.cpu_ms_per_step_rounds.append(timing.cpu_ms_per_step)
        self.sample_ms_rounds.append(timing.sample_ms)
        self.wall_chunk_rounds.append(timing.wall_chunks)
        self.cpu_chunk_rounds.append(timing.cpu_chunks)
        if timing.off_cpu_chunks is not None:
            self.off_wall_chunk_rounds.append(timing.off_wall_chunks)
            self.off_cpu_chunk_rounds.append(timing.off_cpu_chunks)

    @property
    def cpu_ms_per_step_off(self):
        """CPU ms per step with the collector off during the steps; None if not measured."""
        return chunked_median(self.off_cpu_chunk_rounds) if self.off_cpu_chunk_rounds else None

    @property
    def cpu_ms_per_step_off_rounds(self):
        return [sum(chunks) for chunks in self.off_cpu_chunk_rounds]

    @property
    def ms_per_step(self):
        if not self.wall_chunk_rounds:  # made from whole rounds, not from `RoundTiming`s
            return statistics.median(self.ms_per_step_rounds)
        return chunked_median(self.wall_chunk_rounds)

    @property
    def cpu_ms_per_step(self):
        if not self.cpu_chunk_rounds:
            return statistics.median(self.cpu_ms_per_step_rounds)
        return chunked_median(self.cpu_chunk_rounds)

    @property
    def sample_ms_per_name(self):
        rounds = [x for x in self.sample_ms_rounds if x is not None]
        return statistics.median(rounds) if rounds else None


@checked(
    modules=instance(dict),
    num_steps=whole(1, FULL_STEPS),
    rounds=whole(1, 1000),
    num_samples=whole(0, 10_000),
    on_error=optional(function),
    log=optional(function),
    budget=optional(BUDGET),
    collector_off=instance(bool),
)
def side_by_side(
    modules,
    docs,
    num_steps,
    rounds,
    num_samples=0,
    on_error=None,
    log=None,
    budget=None,
    collector_off=False,
):
    """{name: `StageResult`} of every stage of `modules` ({name: a module with a `Model`,
    or anything with one}): a warm-up round, then `rounds` interleaved rounds of
    `time_round` (with `collector_off`, each also times the steps with the collector off).
    `on_error` as for `interleave`; `log` gets a line after each round. `budget` (seconds)
    caps a round's repeats, as `time_round`'s does."""
    budget = ROUND_BUDGET_S if budget is None else budget
    sample_budget = min(budget, SAMPLE_BUDGET_S)
    warmup_steps, warmup_samples = min(num_steps, WARMUP_STEPS), min(num_samples, WARMUP_SAMPLES)

    def warm_up(module):  # imports, caches, a compiler's first call: never in a timed round
        return time_round(module, docs, warmup_steps, warmup_samples, 0, 0)

    done = []  # rounds finished: odd rounds time the collector off first

    def timed(module):
        off_first = len(done) % 2 == 1
        return time_round(
            module, docs, num_steps, num_samples, budget, sample_budget, collector_off, off_first
        )

    def progress(r, results):
        done.append(r)
        if log:
            figures = ", ".join(f"{n} {t[-1].cpu_ms_per_step:.3g}" for n, t in results.items())
            log(f"round {r + 1}/{rounds} (CPU ms/step): {figures}")

    warmed = interleave(modules, 1, warm_up, on_error)
    live = {name: modules[name] for name in warmed}
    timings = interleave(live, rounds, timed, on_error, progress)
    results = {}
    for name, rounds_of_stage in timings.items():
        results[name] = StageResult(name)
        for timing in rounds_of_stage:
            results[name].add(timing)
    return results


def run_bench(modules, docs, num_steps, repeat, num_samples, data_path, log, left_out=None):
    """[`StageResult`] of every stage of `modules`, in order: `side_by_side`, its rounds
    timing the steps with the collector running and off, then each stage's peak memory
    in a process of its own (`measure_peak_mib`).

    A stage that raises is left out with its reason when `left_out` is a list (the
    default stages: one stage being written must not stop the others), else the
    benchmark stops with a `BenchError`.
    """

    def drop(name, error):
        if isinstance(error, OSError):  # not the stage's fault: no stage could run
            raise machine_problem(error) from None
        reason = f"fails to run ({failure(error)})"
        if left_out is None:
            raise BenchError(f"stage {name!r} {reason}") from None
        log(f"left out: {name} {reason}")
        left_out.append({"name": name, "reason": reason})

    results = side_by_side(
        modules, docs, num_steps, repeat, num_samples, drop, log, collector_off=True
    )
    warmup_steps = min(num_steps, WARMUP_STEPS)

    def peak(result):  # the longest name's step makes the peak: other steps only add minutes
        return measure_peak_mib(result.name, data_path, warmup_steps, num_samples)

    peaks = interleave(results, 1, peak, drop)
    for name, (peak_mib,) in peaks.items():
        results[name].peak_mib = peak_mib
        if peak_mib is not None:
            log(f"peak RSS {name}: {peak_mib:.1f} MiB")
    if not peaks:
        raise BenchError("no stage ran; see the lines above for why")
    return [results[name] for name in peaks]


# ---------------------------------------------------------------------------------------
# the figures of rounds


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


def num_positions(docs):
    """Token positions trained on: the work of a step grows with the name's length."""
    cfg = GPTConfig()  # the configuration every timing trains
    return sum(cfg.positions(len(doc) + 2) for doc in docs)  # BOS, the name, BOS


def full_run_scale(docs, num_steps):
    """Token positions per step of the full run over those of the timed steps (about 1)."""
    order, _ = shuffled(docs, SEED)  # the timed run's order
    full = num_positions(step_docs(order, FULL_STEPS)) / FULL_STEPS
    return full / (num_positions(step_docs(order, num_steps)) / num_steps)


# ---------------------------------------------------------------------------------------
# memory


def peak_rss_mib():
    """This process's peak resident memory in MiB.

    Linux's `ru_maxrss` survives `exec`: a child started from a big parent reports at
    least the parent's size. VmHWM belongs to the address space, which `exec` replaces,
    so it is the child's own peak; `ru_maxrss` is the fallback where /proc is missing.
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
    stage_name, data_path, num_steps, num_samples = argv[0], argv[1], int(argv[2]), int(argv[3])
    docs = load_dataset(data_path).docs
    run = Run(docs, stages.load(stage_name), seed=SEED)
    for step, doc in enumerate(step_docs(run.docs, num_steps)):
        run.model.train_step(run.tokenizer.encode(doc), step, FULL_STEPS)
    # the longest name builds the largest step; its peak is the peak of a whole run
    longest = max(run.docs, key=len)
    run.model.train_step(run.tokenizer.encode(longest), num_steps, FULL_STEPS)
    for _ in iter_names(run.model, run.tokenizer, run.rng, num_samples):
        pass
    print(json.dumps({"peak_mib": peak_rss_mib()}))


def measure_peak_mib(stage_name, data_path, num_steps, num_samples):
    """Peak RSS in MiB of a fresh process running a stage, or None where RSS is unknown."""
    args = [stage_name, str(data_path), str(num_steps), str(num_samples)]
    return child_peak_mib("peak_rss_child", args, f"stage {stage_name!r}")


def child_peak_mib(function, args, what):
    """Peak RSS in MiB of a fresh process running `function(args)` of this module (which
    prints it), or None where RSS is unknown."""
    try:
        import resource  # noqa: F401  (absent on Windows; in Pyodide find_spec raises)
    except ImportError:
        return None
    root = str(Path(__file__).resolve().parents[2])  # the folder holding `microgpt`
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.getenv("PYTHONPATH")]))
    )
    code = f"import sys; from microgpt.tools import timing; timing.{function}(sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"memory run of {what} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


# ---------------------------------------------------------------------------------------
# the scale benchmark: larger shapes and batches, for the stages that take them

SCALE_SHAPES = ((16, 1), (64, 2), (256, 2), (512, 2))  # (n_embd, n_layer)
SCALE_HEADS = 4
SCALE_BATCHES = (1, 32)
SCALE_BUDGET_S = 0.25  # a cell's steps per round: until this is spent, one at least
SCALE_WARMUP_STEPS = 2  # steps of each cell before any timing (a compiler's first call)


def scale_stages():
    """The stages the scale benchmark measures (the registry's `scales`) that run here."""
    return [s.name for s in stages.STAGES if s.scales and stages.why_not_runnable(s) is None]


@dataclass(frozen=True)
class ScaleCell:
    """One measurement of the scale benchmark: a stage, a shape, a batch and, for a
    stage whose products go through BLAS, the thread count it is held at."""

    stage: str
    n_embd: int
    n_layer: int
    batch_size: int
    blas_threads: int | None = None  # None: no BLAS (a compiled stage's own loops)

    @property
    def cfg(self):
        return GPTConfig(n_layer=self.n_layer, n_embd=self.n_embd, n_head=SCALE_HEADS)

    @property
    def label(self):
        threads = f", {self.blas_threads} BLAS" if self.blas_threads else ""
        return f"{self.stage} {self.n_layer}x{self.n_embd} B{self.batch_size}{threads}"


def scale_cells(stage_names, shapes=SCALE_SHAPES, batches=SCALE_BATCHES):
    """Every cell of the grid: each stage at each shape and batch (batches above one for
    the stages that batch), at one and at two BLAS threads where it uses BLAS."""
    cells = []
    for name in stage_names:
        stage = stages.BY_NAME[name]
        for n_embd, n_layer in shapes:
            for batch in batches:
                if batch > 1 and not stage.batched:
                    continue
                for threads in (1, 2) if stage.blas else (None,):
                    cells.append(ScaleCell(name, n_embd, n_layer, batch, threads))
    return cells


@contextmanager
def blas_held_at(threads):
    """BLAS at `threads` threads while a cell runs (None: left as it is)."""
    if threads is None:
        yield
        return
    from ..stages._arrays import blas_threads

    blas_threads.forced = threads
    try:
        yield
    finally:
        blas_threads.forced = None


class ScaleRun:
    """One cell's model, trained on round after round from step 1 of the seed-42 order
    (making a 512-wide model takes seconds, so it is made once)."""

    def __init__(self, cell, module, order, tokenizer, weights):
        self.cell = cell
        self.model = module.Model(cell.cfg, tokenizer.vocab_size, weights)
        self.order, self.tokenizer = order, tokenizer
        self.step = 0

    def batch(self, step):
        """The token lists of `step`, as `microgpt.train.train` reads them."""
        size = self.cell.batch_size
        names = [self.order[(step * size + i) % len(self.order)] for i in range(size)]
        return [self.tokenizer.encode(name) for name in names]

    def train(self, budget):
        """(wall s, CPU s, tokens) of steps run until `budget` seconds are spent (one at
        least); tokens: the positions trained on, each predicting the next token."""
        cfg, size = self.cell.cfg, self.cell.batch_size
        wall = cpu = 0.0
        tokens = 0
        with blas_held_at(self.cell.blas_threads):
            while wall == 0.0 or wall < budget:
                batch = self.batch(self.step)
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                if size == 1:
                    self.model.train_step(batch[0], self.step % FULL_STEPS, FULL_STEPS)
                else:
                    self.model.train_batch(batch, self.step % FULL_STEPS, FULL_STEPS)
                wall += time.perf_counter() - start_wall
                cpu += time.process_time() - start_cpu
                tokens += sum(cfg.positions(len(ids)) for ids in batch)
                self.step += 1
        return wall, cpu, tokens, self.step


@dataclass
class ScaleResult:
    """The rounds of one cell: per round (ms/step, CPU ms/step, tokens/s)."""

    cell: ScaleCell
    rounds: list = field(default_factory=list)
    peak_mib: float | None = None

    def add(self, wall, cpu, tokens, steps):
        self.rounds.append((1000 * wall / steps, 1000 * cpu / steps, tokens / wall))

    def median(self, i):
        return statistics.median(r[i] for r in self.rounds)


def scale_side_by_side(modules, docs, cells, rounds, budget=SCALE_BUDGET_S, log=None):
    """{cell: `ScaleResult`}: a warm-up of every cell, then `rounds` interleaved rounds."""
    order, _ = shuffled(docs, SEED)
    tokenizer = Tokenizer.from_docs(order)
    weights = {}  # one draw per shape, shared by its cells: drawing 6 M numbers takes seconds
    runs = {}
    for cell in cells:
        key = (cell.n_embd, cell.n_layer)
        if key not in weights:
            weights[key] = init_weights(cell.cfg, tokenizer.vocab_size, random.Random(SEED))
        runs[cell] = ScaleRun(cell, modules[cell.stage], order, tokenizer, weights[key])
    for run in runs.values():  # imports, caches, a compiler's first call
        for _ in range(SCALE_WARMUP_STEPS):
            run.train(0)
    weights.clear()

    def measure(run):
        before = run.step
        wall, cpu, tokens, _ = run.train(budget)
        return wall, cpu, tokens, run.step - before

    def progress(r, results):
        if log:
            log(f"scale round {r + 1}/{rounds} done")

    timings = interleave(runs, rounds, measure, after_round=progress, settle_s=SETTLE_S)
    results = {}
    for cell, measured in timings.items():
        results[cell] = ScaleResult(cell)
        for wall, cpu, tokens, steps in measured:
            results[cell].add(wall, cpu, tokens, steps)
    return results


def scale_peak_child(argv):
    """Body of a scale cell's memory subprocess: make the model, train two steps on the
    batch of the longest names, print the peak RSS in MiB."""
    stage_name, data_path = argv[0], argv[1]
    n_embd, n_layer, batch_size = int(argv[2]), int(argv[3]), int(argv[4])
    threads = int(argv[5]) or None
    cell = ScaleCell(stage_name, n_embd, n_layer, batch_size, threads)
    docs = load_dataset(data_path).docs
    run = Run(docs, stages.load(stage_name), seed=SEED, cfg=cell.cfg)
    longest = sorted(run.docs, key=len)[-batch_size:]
    batch = [run.tokenizer.encode(name) for name in longest]
    with blas_held_at(threads):
        for step in range(2):
            if batch_size == 1:
                run.model.train_step(batch[0], step, FULL_STEPS)
            else:
                run.model.train_batch(batch, step, FULL_STEPS)
    print(json.dumps({"peak_mib": peak_rss_mib()}))


def measure_scale_peak_mib(cell, data_path):
    """Peak RSS in MiB of a fresh process training one scale cell, or None where RSS is
    unknown."""
    args = [cell.stage, str(data_path), str(cell.n_embd), str(cell.n_layer)]
    args += [str(cell.batch_size), str(cell.blas_threads or 0)]
    return child_peak_mib("scale_peak_child", args, f"scale cell {cell.label!r}")


def run_scale(modules, docs, cells, rounds, data_path, log, budget=SCALE_BUDGET_S):
    """[`ScaleResult`] of every cell, in order: `scale_side_by_side`, then each cell's
    peak memory in a process of its own."""
    results = scale_side_by_side(modules, docs, cells, rounds, budget, log)
    peaks = interleave(results, 1, lambda r: measure_scale_peak_mib(r.cell, data_path))
    for cell, (peak_mib,) in peaks.items():
        results[cell].peak_mib = peak_mib
        if peak_mib is not None:
            log(f"peak RSS {cell.label}: {peak_mib:.1f} MiB")
    return [results[cell] for cell in cells]
