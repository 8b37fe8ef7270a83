"""Stage `gc`: the cyclic garbage collector is switched off while a step runs.

Every graph node and children tuple is a new container object, and each batch of
them starts a collection that walks the step's graph (chapter 11 tells how, for
CPython 3.11 and since). The graph has no cycles, so reference counting frees all of
it when the step ends; the collector finds nothing. Here it is paused for the step
and resumed afterwards (so cycles made elsewhere are still collected, between
steps). With the collector quiet, the node pool of the `graph` stage no longer pays
for itself, so this stage recycles no nodes. Chapter 11 measures both choices, and
`gc.freeze()`, which was tried and not kept.

(The module is `gc_pause`, not `gc`, so that it never shadows the standard library's.)
"""

import gc

from . import fused_norm


class Model(fused_norm.Model):
    """`fused_norm` with the garbage collector paused during each training step."""

    recycles = False  # with the collector paused, a fresh node is as cheap as a pooled one

    def train_step(self, tokens, step, num_steps):
        if not gc.isenabled():  # someone else already manages the collector
            return super().train_step(tokens, step, num_steps)
        gc.disable()
        try:
            return super().train_step(tokens, step, num_steps)
        finally:
            gc.enable()


__all__ = ["Model"]
