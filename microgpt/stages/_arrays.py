"""numpy for the array stages, with BLAS's thread count chosen by the size of the
products, and their model's buffers.

Products of 16-wide matrices are too small to share out: BLAS threads only add their
start-up and wake-ups (measured on the default run: more CPU time and more wall
time with them). Products of a batch of 512-wide rows are another matter. So numpy
loads with one BLAS thread (OpenBLAS and MKL read the count when they load, so it is
set before the import here), and `blas_threads.use(threads_for(rows, width))` raises
it through threadpoolctl for a step whose largest product is big enough to share (to
the cores other processes leave idle), and lowers it again for a small one; the scale
benchmark of record measures one against two threads per shape (`bench --scale`). A
user's own setting of the variables stands, and so does the count of a numpy loaded
before this module; without threadpoolctl (`pip install threadpoolctl`), BLAS keeps one thread.
"""

import os
import sys

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
USER_SET = any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES)
NUMPY_LOADED = "numpy" in sys.modules
if not USER_SET:
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

from ._graph_free import GraphFreeModel  # noqa: E402

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # BLAS keeps the thread count it loaded with
    ThreadpoolController = None

# multiply-adds of a step's largest product (a batch's rows through the MLP's first
# matrix) from which BLAS shares it out over every core (see `threads_for`)
SHARED_FROM = 2**24


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def idle_cores():
    """Cores no other process keeps busy: ours, plus those the load average leaves."""
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows, Pyodide): assume idle
        busy = 0.0
    return max(1, min(cores(), round(cores() - busy + 1)))


def threads_for(rows, width):
    """BLAS threads for a step of `rows` positions through a model `width` wide: one
    while its largest product (rows x width x 4 width) is too small to share out, and
    from `SHARED_FROM` multiply-adds on, one per core that other processes leave idle:
    a BLAS thread that waits for a core stalls the others at every product (the scale
    benchmark measures it on a busy machine)."""
    return 1 if rows * width * 4 * width < SHARED_FROM else idle_cores()


class BlasThreads:
    """BLAS's thread count, set through threadpoolctl only when it changes (a compare
    per step; the controller is made on first use, as it looks through the libraries)."""

    def __init__(self):
        self.controller = None
        self.current = None if NUMPY_LOADED or USER_SET else 1
        self.forced = None  # a count that overrides every step's choice (the benchmark's)

    @property
    def settable(self):
        return ThreadpoolController is not None and not USER_SET

    def use(self, threads):
        threads = self.forced or threads
        if threads == self.current or not self.settable:
            return
        if self.controller is None:
            self.controller = ThreadpoolController()
        self.controller.limit(limits=threads, user_api="blas")
        self.current = threads


blas_threads = BlasThreads()


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


__all__ = ["ArrayModel", "blas_threads", "np", "threads_for"]
