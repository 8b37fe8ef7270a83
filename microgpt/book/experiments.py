"""Measurements the chapters run that are not a stage: each compares two variants.

Timings interleave the variants round by round and report medians of CPU time, so
a busy minute slows both alike (`microgpt.tools.timing`, as the benchmark times).
"""

from types import SimpleNamespace

from ..data import load_dataset
from ..stages import graph
from ..tools.timing import side_by_side


class Unpooled(graph.Model):
    """`graph` with its node pool switched off: every step allocates fresh nodes."""

    recycles = False


def compare_pooling(steps=20, rounds=7, path=None):
    """Median CPU ms per training step of `graph` without and with node pooling: `rounds`
    interleaved rounds of the first `steps` steps of the seed-42 run."""
    docs = load_dataset(path).docs
    variants = {"without pooling": SimpleNamespace(Model=Unpooled), "with pooling": graph}
    results = side_by_side(variants, docs, steps, rounds)
    off, on = (results[name].cpu_ms_per_step for name in variants)
    print(f"graph without pooling: {off:.1f} ms/step; with pooling: {on:.1f} ms/step")
    return off, on
