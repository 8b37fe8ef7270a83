"""Where a training step's time goes: forward, backward, optimizer, and the cyclic collector.

A profiler such as cProfile sees Python functions, not the cyclic garbage collector:
a collection runs inside whichever function allocated the object that triggered it,
and its time is charged to that function. Here the collector is timed on its own,
with `gc.callbacks` (a "start" and a "stop" event per collection), and taken out of
the phase it interrupted, so the four phases add up to the step.

The phases are found without changing a stage: the run's model gets instance
attributes that wrap the methods its `train_step` calls (`loss` or `backward`,
`optimizer.step` or `adam_step`, and for the graph-free stages `forward`), and each
wrapper only notes the moment the phase changes. Freeing the step's graph, when
`train_step` returns, counts with backward. Times are CPU time (`time.process_time`),
as the benchmark's ratios are.

The same figures in the browser's Python (Pyodide's CPython 3.14) are recorded by
lite/measure_collector.py; `recorded_collector` reads that record and `collector_table`
sets it beside this Python's (chapter 11, "Which Python").
"""

import gc
import math
import platform
import reprlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import stages
from ..arguments import ArgumentError, checked, function, instance, optional, path, shown, whole
from ..arguments import text as a_str
from ..data import names
from ..errors import single_line
from ..files import parse_json, read_capped
from ..model import GPT
from ..stages import graph
from ..tools.timing import FULL_STEPS
from ..train import Run, trainable
from .checks import stage_name

PHASES = ("forward", "backward", "optimizer", "collector")


def a_clock(value, label):
    """A clock like `time.process_time`: called with nothing, it gives finite seconds.
    Tried once here: a clock that fails would fail inside the collector's callback."""
    function(value, label)
    try:
        now = value()
    except Exception as e:
        raise ArgumentError(
            f"{label} must be a clock like time.process_time; calling it raised {type(e).__name__}"
        ) from None
    if not isinstance(now, (int, float)) or isinstance(now, bool) or not math.isfinite(now):
        raise ArgumentError(
            f"{label} must be a clock like time.process_time (seconds as a number), "
            f"but it gave {shown(now)}"
        )
    return value


class PhaseClock:
    """Accumulates time per phase; `switch` ends the current phase and starts another."""

    @checked(clock=a_clock)
    def __init__(self, clock=time.process_time):
        self.clock = clock
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.phase = None  # None: outside a training step, nothing is counted
        self.started = 0.0
        self.seen = set()  # phases entered at least once
        self.collections = {}  # generation -> [count, seconds]
        self._resume = None
        self._gc_started = 0.0

    def switch(self, phase):
        now = self.clock()
        if self.phase is not None:
            self.totals[self.phase] += now - self.started
            self.seen.add(self.phase)
        self.phase, self.started = phase, now

    def on_gc(self, event, info):
        """A `gc.callbacks` callback: the collector becomes the current phase while it runs."""
        if self.phase is None and self._resume is None:
            return
        if event == "start":
            self._resume = self.phase
            self._gc_started = self.clock()
            self.switch("collector")
        elif self._resume is not None:
            entry = self.collections.setdefault(info["generation"], [0, 0.0])
            entry[0] += 1
            entry[1] += self.clock() - self._gc_started
            resume, self._resume = self._resume, None
            self.switch(resume)


def _wrap(obj, name, clock, on_enter=None, on_exit=None):
    """Shadow the method `obj.name` by an instance attribute that switches phases around it."""
    method = getattr(obj, name, None)
    if method is None:
        return

    def wrapper(*args, **kwargs):
        if on_enter:
            clock.switch(on_enter)
        try:
            return method(*args, **kwargs)
        finally:
            if on_exit:
                clock.switch(on_exit)

    setattr(obj, name, wrapper)


@checked(model=trainable, clock=instance(PhaseClock))
def instrument(model, clock):
    """Wrap what `model.train_step` calls so that `clock` follows the phases of a step."""
    if isinstance(model, GPT):  # a graph: the loss (or the logits) first, then backward
        _wrap(model, "loss", clock, on_exit="backward")
        _wrap(model, "backward", clock, on_enter="backward")
    else:  # graph-free: the forward per position; the float loss head counts as backward
        _wrap(model, "forward", clock, on_enter="forward", on_exit="backward")
        _wrap(model, "adam_step", clock, on_enter="optimizer", on_exit="backward")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:  # what the step frees on return counts with backward
        _wrap(optimizer, "step", clock, on_enter="optimizer", on_exit="backward")

    def step_wrapper(train_step):
        def timed_step(*args, **kwargs):
            clock.switch("forward")
            try:
                return train_step(*args, **kwargs)
            finally:
                clock.switch(None)

        return timed_step

    model.train_step = step_wrapper(model.train_step)


@dataclass
class Breakdown:
    """Measured steps of one stage: per-phase totals, the step's own total, collections."""

    steps: int
    totals: dict  # phase -> seconds over all steps
    seen: set  # phases that were entered
    step_seconds: float  # the steps timed as a whole, for the check that the phases add up
    collections: dict = field(default_factory=dict)  # generation -> [count, seconds]

    def ms_per_step(self):
        """{phase: mean ms per step}; None for a phase the stage has no separate call for."""
        out = {}
        for phase in PHASES:
            measured = phase == "collector" or phase in self.seen
            out[phase] = self.totals[phase] / self.steps * 1000 if measured else None
        return out

    def collector_by_generation(self):
        """{generation: (collections per step, collector ms per step)}."""
        return {
            gen: (count / self.steps, seconds / self.steps * 1000)
            for gen, (count, seconds) in sorted(self.collections.items())
        }


STEPS = whole(1, FULL_STEPS)
POOLING = instance(bool, hint=" (True or False)")


@checked(stage_name=stage_name, docs=names, steps=STEPS, pooling=POOLING, clock=a_clock)
def measure(stage_name, docs, steps=3, pooling=True, clock=time.process_time):
    """A `Breakdown` of the first `steps` steps of the seed-42 run of `stage_name`.

    `pooling=False` switches the node pool of the `graph` stages off, as chapter 07 does.
    The pool starts empty, as in a fresh process; the process's other live objects
    are walked by the collector too, so it is collected first.
    """
    run = Run(docs, stages.load(stage_name), seed=42)
    if not pooling:
        run.model.recycles = False
    phase_clock = PhaseClock(clock)
    instrument(run.model, phase_clock)
    timed_step = run.model.train_step
    step_seconds = [0.0]

    def outer_step(*args):
        start = clock()
        try:
            return timed_step(*args)
        finally:
            step_seconds[0] += clock() - start

    run.model.train_step = outer_step
    graph.empty_pool()
    gc.collect()
    gc.callbacks.append(phase_clock.on_gc)
    try:
        for _ in run.train(steps):
            pass
    finally:
        gc.callbacks.remove(phase_clock.on_gc)
        graph.empty_pool()
    return Breakdown(
        steps, phase_clock.totals, phase_clock.seen, step_seconds[0], phase_clock.collections
    )


@checked(stage_name=stage_name, docs=names, steps=STEPS, pooling=POOLING)
def step_breakdown(stage_name, docs, steps=3, pooling=True):
    """{"forward", "backward", "optimizer", "collector"}: mean CPU ms per training step
    of the first `steps` steps of the seed-42 run. "collector" is the time the cyclic
    collector ran during the step, taken out of the phase it interrupted, so the four
    add up to the step. A stage that computes its gradient in one call with no separate
    forward (`jit`) reports it under "forward", with None for what it does not separate."""
    return measure(stage_name, docs, steps, pooling).ms_per_step()


@checked(fn=function, clock=a_clock)
def collector_time(fn, clock=time.process_time):
    """(fn's result, ms the cyclic collector ran while fn ran, collections by generation)."""
    phase_clock = PhaseClock(clock)
    gc.callbacks.append(phase_clock.on_gc)
    phase_clock.switch("forward")
    try:
        result = fn()
    finally:
        phase_clock.switch(None)
        gc.callbacks.remove(phase_clock.on_gc)
    counts = {gen: count for gen, (count, _) in sorted(phase_clock.collections.items())}
    return result, phase_clock.totals["collector"] * 1000, counts


def breakdowns_of(value, label):
    """{label: step_breakdown(...)}: per label, ms (or None) for each of `PHASES`."""
    ok = (
        isinstance(value, dict)
        and value
        and all(
            isinstance(phases, dict)
            and set(phases) == set(PHASES)
            and all(ms is None or isinstance(ms, (int, float)) for ms in phases.values())
            for phases in value.values()
        )
    )
    if not ok:
        raise ArgumentError(
            f"{label} must be {{label: step_breakdown(...)}}, each with {', '.join(PHASES)}; "
            f"not {shown(value)}"
        )
    return value


def axes(value, label):
    if not callable(getattr(value, "barh", None)):
        raise ArgumentError(
            f"{label} must be matplotlib axes (plt.subplots()[1]), not {shown(value)}"
        )
    return value


@checked(breakdowns=breakdowns_of, title=a_str, ax=optional(axes))
def plot_breakdowns(breakdowns, title="CPU ms per training step", ax=None):
    """Stacked horizontal bars, one per {label: step_breakdown(...)}, on `ax` or a new
    figure; returns the figure."""
    import matplotlib.pyplot as plt

    colors = {
        "forward": "#4c72b0",
        "backward": "#dd8452",
        "optimizer": "#55a868",
        "collector": "#c44e52",
    }
    labels = list(breakdowns)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.6 * len(labels) + 1.2))
    lefts = [0.0] * len(labels)
    for phase in PHASES:
        widths = [breakdowns[label][phase] or 0.0 for label in labels]
        ax.barh(labels, widths, left=lefts, color=colors[phase], label=phase)
        lefts = [a + b for a, b in zip(lefts, widths)]
    ax.invert_yaxis()
    ax.set_xlabel("CPU ms per step")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.figure.tight_layout()
    return ax.figure


# ---------------------------------------------------------------------------------------
# the same figures in the browser's Python, recorded by lite/measure_collector.py

#: chapter 11's breakdown in Pyodide's Python 3.14 (served with the package, so the
#: browser edition reads it too)
BROWSER_RECORD = Path(__file__).resolve().parent / "collector_pyodide.json"
MAX_RECORD_BYTES = 1 << 20
REMAKE = "make it again with: python lite/measure_collector.py"


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record_problem(record):
    """What makes `record` unlike lite/measure_collector.py's output, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key in ("python_version", "implementation", "pyodide", "date"):
        if not isinstance(record.get(key), str):
            return f"no text {key!r}"
    threshold = record.get("threshold")
    if not isinstance(threshold, list) or not all(isinstance(t, int) for t in threshold):
        return "no 'threshold' (a list of whole numbers)"
    if not isinstance(record.get("stages"), dict) or not record["stages"]:
        return "no 'stages'"
    for name, stage in record["stages"].items():
        ms = stage.get("ms_per_step") if isinstance(stage, dict) else None
        ok = isinstance(ms, dict) and set(ms) == set(PHASES)
        ok = ok and all(v is None or _number(v) for v in ms.values())
        by_generation = stage.get("collector_by_generation") if ok else None
        ok = ok and isinstance(by_generation, dict)
        ok = ok and all(
            g.isascii()
            and g.isdigit()
            and isinstance(v, list)
            and len(v) == 2
            and all(map(_number, v))
            for g, v in by_generation.items()
        )
        if not ok:
            return f"stage {reprlib.repr(name)} lacks ms_per_step or collector_by_generation"
    return None


def a_collector_record(value, label):
    problem = _record_problem(value)
    if problem:
        raise ArgumentError(f"{label} must be recorded_collector()'s record ({problem})")
    return value


@checked(file=path)
def recorded_collector(file=BROWSER_RECORD):
    """The record of lite/measure_collector.py: chapter 11's breakdown measured in the
    browser's Python (Pyodide), with its version and the collector's thresholds."""
    raw = read_capped(file, MAX_RECORD_BYTES, ArgumentError, "a collector record")
    try:
        record = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ArgumentError(f"{file}: not a JSON record ({e}); {REMAKE}") from None
    problem = _record_problem(record)
    if problem:
        raise ArgumentError(f"{file}: not a collector record ({problem}); {REMAKE}")
    return record


def measured(value, label):
    """{stage: measure(...)}, a `Breakdown` per stage."""
    if not (
        isinstance(value, dict) and value and all(isinstance(b, Breakdown) for b in value.values())
    ):
        raise ArgumentError(f"{label} must be {{stage: measure(...)}}, not {shown(value)}")
    return value


def _ms(value):
    return "-" if value is None else f"{value:.2f}"


def _step_ms(ms):
    """A step's CPU ms: its phases added up (a phase a stage lacks is None)."""
    return sum(v for v in ms.values() if v is not None)


def _share(ms):
    step = _step_ms(ms)
    return f"{100 * ms['collector'] / step:.1f}%" if step > 0 else "-"


def _collections(by_generation, generation):
    if generation not in by_generation:
        return "-"
    count, ms = by_generation[generation]
    return f"{count:.1f} per step, {ms:.2f} ms"


@checked(breakdowns=measured, record=a_collector_record)
def collector_table(breakdowns, record):
    """This Python's collector figures (`breakdowns`, measured here) beside the record's
    (the browser's Python), one row per figure: the thresholds, and per stage the step's
    CPU ms, the collector's ms and share, and collections per step by generation."""
    missing = [name for name in breakdowns if name not in record["stages"]]
    if missing:
        have = ", ".join(record["stages"])
        raise ArgumentError(
            single_line(f"collector_table: the record has no stage {missing[0]}; it has {have}")
        )
    here = f"{platform.python_implementation()} {platform.python_version()}"
    there = single_line(f"{record['implementation']} {record['python_version']}")
    rows = [
        ("", here, there),
        (
            "",
            "(here, measured above)",
            single_line(f"(Pyodide {record['pyodide']}, {record['date'][:10]})"),
        ),
        ("collector thresholds", str(gc.get_threshold()), str(tuple(record["threshold"]))),
    ]
    for name, b in breakdowns.items():
        ours, theirs = b.ms_per_step(), record["stages"][name]["ms_per_step"]
        rows.append((f"{name}: CPU ms per step", _ms(_step_ms(ours)), _ms(_step_ms(theirs))))
        rows.append((f"{name}: collector ms", _ms(ours["collector"]), _ms(theirs["collector"])))
        rows.append((f"{name}: collector share", _share(ours), _share(theirs)))
        ours_by = {str(g): v for g, v in b.collector_by_generation().items()}
        theirs_by = record["stages"][name]["collector_by_generation"]
        for g in sorted(set(ours_by) | set(theirs_by), key=int):
            rows.append(
                (f"{name}: generation {g}", _collections(ours_by, g), _collections(theirs_by, g))
            )
        if not ours_by and not theirs_by:
            rows.append((f"{name}: collections", "none", "none"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


__all__ = [
    "BROWSER_RECORD",
    "PHASES",
    "Breakdown",
    "collector_table",
    "collector_time",
    "measure",
    "plot_breakdowns",
    "recorded_collector",
    "step_breakdown",
]
