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
"""

import gc
import time
from dataclasses import dataclass, field

from .. import stages
from ..model import GPT
from ..stages import graph
from ..train import Run

PHASES = ("forward", "backward", "optimizer", "collector")


class PhaseClock:
    """Accumulates time per phase; `switch` ends the current phase and starts another."""

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


def step_breakdown(stage_name, docs, steps=3, pooling=True):
    """{"forward", "backward", "optimizer", "collector"}: mean CPU ms per training step
    of the first `steps` steps of the seed-42 run. "collector" is the time the cyclic
    collector ran during the step, taken out of the phase it interrupted, so the four
    add up to the step. A stage that computes its gradient in one call with no separate
    forward (`jit`) reports it under "forward", with None for what it does not separate."""
    return measure(stage_name, docs, steps, pooling).ms_per_step()


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


__all__ = [
    "PHASES",
    "Breakdown",
    "collector_time",
    "measure",
    "plot_breakdowns",
    "step_breakdown",
]
