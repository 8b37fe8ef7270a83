"""Side variant `threads`: `fused_norm` with the attention heads on a thread pool.

The Go port ran the heads (and q, k, v) concurrently. In CPython only one thread
runs Python bytecode at a time (the GIL), and building graph nodes is nothing but
bytecode, so the heads cannot overlap; handing each head to a worker adds a
queue, a lock and a thread switch per head per position. The heads build disjoint
nodes and are joined in order, so the graph, the losses and the names are the
same as `fused_norm`'s. Node pooling is off: its free list is not for sharing.

Measured, 300 steps alternating with `fused_norm` (pool off) in one process:
CPU time 12.07 ms/step with threads against 11.88 without, 2% more work and no
overlap. Wall-clock time could not be trusted on this shared 2-core machine (load
average about 9): there the threaded model looked faster (median 28.6 against 63.9
ms/step) because waking a worker thread wins it a fresh scheduler slice from the
other processes, not because heads overlap; on an idle machine the GIL makes the
wall time at least the CPU time. Processes do not help either: a graph cannot be
shared between processes, and even sending one position's four heads as plain
floats to a 2-process pool and back takes about 400 us against 25 us to compute
them in place. No free-threaded CPython (3.13t) is installed here to try. So this
stays a side variant, never the default.
"""

from concurrent.futures import ThreadPoolExecutor

from ..config import AdamConfig
from . import fused_norm


class Model(fused_norm.Model):
    """`fused_norm`, one attention head per worker thread."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig(), workers=None):
        super().__init__(cfg, vocab_size, weights, adam, pool_nodes=False)
        self.executor = ThreadPoolExecutor(max_workers=workers or cfg.n_head)

    def attention(self, q, layer_keys, layer_values):
        starts = range(0, self.cfg.n_embd, self.cfg.head_dim)
        heads = [
            self.executor.submit(self.attention_head, q, layer_keys, layer_values, hs)
            for hs in starts
        ]
        return [out for head in heads for out in head.result()]


__all__ = ["Model"]
