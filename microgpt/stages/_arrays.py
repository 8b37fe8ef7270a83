"""numpy for the array stages, loaded with one BLAS thread, and their model's buffers.

Products of 16-wide matrices are too small to share out: BLAS threads only add their
start-up and wake-ups (measured on the default run: more CPU time and more wall
time with them). OpenBLAS and MKL read the thread count when numpy loads, so it is
set before the import here; a user's own setting stands. Where numpy was loaded
before this module, its thread count stays what it was.
"""

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
if not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

from ._graph_free import GraphFreeModel  # noqa: E402


class ArrayModel(GraphFreeModel):
    """The weights as one float64 array, with three alike: the gradient and Adam's running
    means of gradients and of squared gradients."""

    memory_kind = "float64"  # see `microgpt.memory`

    def __init__(self, cfg, vocab_size, weights, adam):
        super().__init__(cfg, vocab_size, adam)
        self.params = np.array(self.layout.flatten(weights), dtype=np.float64)
        self.grads = np.zeros_like(self.params)
        self.m = np.zeros_like(self.params)
        self.v = np.zeros_like(self.params)

    @property
    def num_params(self):
        return self.params.size

    def weights(self):
        """The parameters keyed like `init_weights`, as lists of rows of floats."""
        return self.layout.unflatten(self.params.tolist())


__all__ = ["ArrayModel", "np"]
