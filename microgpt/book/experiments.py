"""Measurements the chapters run that are not a stage: each compares two variants.

Timings interleave the variants round by round and report medians of CPU time, so
a busy minute slows both alike (see `microgpt.tools.bench` for the full benchmark).
"""

import statistics
import time

from ..data import load_dataset
from ..stages import graph
from ..train import Run


def compare_pooling(steps=20, rounds=7, path=None):
    """Median CPU ms per training step of `graph` without and with node pooling."""
    docs = load_dataset(path).docs
    runs = {pooled: Run(docs, graph) for pooled in (False, True)}
    runs[False].model.release = lambda topo: None  # the hook switched off: no recycling
    times = {False: [], True: []}
    for r in range(rounds):
        for pooled, run in runs.items():
            graph.free_nodes.clear()  # each variant starts from an empty free list
            batch = [run.tokenizer.encode(run.docs[s]) for s in range(r * steps, (r + 1) * steps)]
            start = time.process_time()
            for i, tokens in enumerate(batch):
                run.model.train_step(tokens, r * steps + i, rounds * steps)
            times[pooled].append((time.process_time() - start) / steps * 1000)
    graph.free_nodes.clear()
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"graph without pooling: {off:.1f} ms/step; with pooling: {on:.1f} ms/step")
    return off, on
