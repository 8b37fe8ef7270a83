"""Side variant `threads`: the `gc` stage with the attention heads on a thread pool.

The Go port ran q, k, v and the heads concurrently where the work was large
enough. In CPython only one thread runs Python bytecode at a time (the GIL), and
building graph nodes is nothing but bytecode, so the heads cannot overlap; handing
each head to a worker adds a queue, a lock and a thread switch per head per
position. The heads build disjoint nodes and are joined in order, so the graph, the
losses and the names are the same as `gc`'s. Like `gc`, it recycles no nodes: a free
list shared by the workers would need a lock. Chapter 11 measures it in wall and CPU
time, and explains why processes do not help either (a graph cannot be shared
between processes). So this stays a side variant, never the default.
"""

from concurrent.futures import ThreadPoolExecutor

from ..config import AdamConfig
from . import gc_pause, graph


class Model(gc_pause.Model):
    """`gc`, one attention head per worker thread."""

    def __init__(self, cfg, vocab_size, weights, adam=AdamConfig(), workers=None):
        super().__init__(cfg, vocab_size, weights, adam)
        self.executor = ThreadPoolExecutor(max_workers=workers or cfg.n_head)
        graph.empty_pool()  # nodes left by another model: the workers must not share them

    def attention(self, q, layer_keys, layer_values):
        starts = range(0, self.cfg.n_embd, self.cfg.head_dim)
        heads = [
            self.executor.submit(self.attention_head, q, layer_keys, layer_values, hs)
            for hs in starts
        ]
        return [out for head in heads for out in head.result()]


__all__ = ["Model"]
