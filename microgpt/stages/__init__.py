"""The registry of stages: the same model, made faster one pass at a time.

Each stage is a module with a `Model` class (the interface of `microgpt.model.GPT`)
and a docstring saying what its pass changes and why that is faster. Stages are
cumulative: each builds on a stage before it in `STAGES` (never one after it) and
changes only its own pass; code that two stages share sits in a private helper
module (`_name.py`), which imports no stage. Modules are imported on first use, so
a stage that needs numpy costs nothing without it. The registry also states what
each stage can do, so callers never name stages.
"""

import importlib
import importlib.util
from dataclasses import dataclass

from ..errors import MicrogptError, single_line

# the values of the options `device` and `dtype` (where `auto` picks CUDA when present)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float64", "float32", "bfloat16")


class StageError(MicrogptError):
    """A stage that does not exist or cannot run here; the message says what to do."""


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str  # one line, shown by `python -m microgpt stages`
    requires: tuple = ()  # optional third-party modules this stage imports
    in_chain: bool = True  # False: a side variant (oracle, concurrency), never the default
    batched: bool = False  # its Model has `train_batch`: several names per step
    module: str = ""  # the module's name where it differs from the stage's
    compiled: bool = False  # pays a compiler's start-up cost: never the default run
    scales: bool = False  # trains large shapes fast enough for the scale benchmark
    blas: bool = False  # its products go through BLAS: measured with one and two threads
    options: tuple = ()  # keyword options its Model takes (the CLI's --device, --dtype, ...)
    parallel: bool = False  # its Model has `distribute`: data-parallel under torchrun

    @property
    def module_name(self):
        return f"microgpt.stages.{self.module or self.name}"


STAGES = [
    Stage("baseline", "the original algorithm: scalar Values, one graph node per op"),
    Stage("cleanup", "precomputed parameter keys; attention reads the KV cache in place"),
    Stage("numeric_inference", "sampling on plain floats, no autograd graph"),
    Stage("graph", "mark-based iterative traversal; graph released after each step"),
    Stage("numeric_ce", "loss head computed on floats; probs - onehot injected into logits"),
    Stage("fused", "one Dot / WeightedSum node per dot product, backward as a loop"),
    Stage("fused_norm", "one RMSNorm scale node with its analytic gradient"),
    Stage("gc", "garbage collector tuned around each step", module="gc_pause"),
    Stage("tape", "nodes recorded in creation order; backward walks the tape, Adam on floats"),
    Stage("flat", "no graph at all: flat float lists and a hand-written backward"),
    Stage(
        "tensor",
        "contiguous numpy core, whole name per step, causal mask",
        ("numpy",),
        batched=True,
        scales=True,
        blas=True,
    ),
    Stage(
        "jit",
        "the flat algorithm compiled by numba over float64 arrays",
        ("numba", "numpy"),
        compiled=True,
        batched=True,
        scales=True,
    ),
    Stage("threads", "gc, attention heads on a thread pool (GIL study)", in_chain=False),
    Stage(
        "torch",
        "PyTorch: autograd, any device and dtype, batches, data-parallel under torchrun",
        ("torch",),
        in_chain=False,
        batched=True,
        scales=True,
        module="pytorch",
        options=("device", "dtype", "compile"),
        parallel=True,
    ),
]
BY_NAME = {stage.name: stage for stage in STAGES}


def stage_names():
    """The name of every stage, in pass order."""
    return [stage.name for stage in STAGES]


def missing_requirements(stage):
    """The optional modules `stage` needs that are not installed.

    Looked up, not imported: importing torch just to list the stages would take seconds.
    """
    return [module for module in stage.requires if importlib.util.find_spec(module) is None]


def available():
    """Stages whose optional dependencies are installed, in pass order."""
    return [stage for stage in STAGES if not missing_requirements(stage)]


def why_not_runnable(stage):
    """Why `stage` cannot run here (a package missing, no module written yet), or None."""
    missing = missing_requirements(stage)
    if missing:
        pkgs = " ".join(missing)
        return f"needs {pkgs} (pip install {pkgs})"
    if importlib.util.find_spec(stage.module_name) is None:
        return f"has no module {stage.module_name} yet"
    return None


def default_name(passed_over=None):
    """The fastest stage that starts at once: the last available, uncompiled one in the
    chain that loads. A stage whose package is installed but fails to import (a broken
    numpy) is passed over, and (name, why) is appended to `passed_over` if given.

    A compiled stage trains faster per step but its compiler's import and cache load
    cost more than the whole default run of the stage before it.
    """
    candidates = [s for s in available() if s.in_chain and not s.compiled]
    for stage in reversed(candidates):
        try:
            load(stage.name)
        except StageError as e:
            if passed_over is not None:
                passed_over.append((stage.name, str(e)))
            continue
        return stage.name
    raise StageError("no stage can be loaded here; reinstall microgpt-book")


def load(name):
    """The module of stage `name`, or a `StageError` saying what is wrong: an unknown
    name, a package not installed, or one installed that fails to import."""
    if not isinstance(name, str) or name not in BY_NAME:
        shown = repr(name) if isinstance(name, str) else f"{type(name).__name__} {name!r}"[:60]
        raise StageError(
            f"unknown stage {single_line(shown)}; choose one of: {', '.join(stage_names())}"
        )
    stage = BY_NAME[name]
    missing = missing_requirements(stage)
    if missing:
        pkgs = " ".join(missing)
        raise StageError(f"stage {name!r} needs {pkgs}; install it with: pip install {pkgs}")
    for package in stage.requires:  # imported first, so a broken one is named as such
        try:
            importlib.import_module(package)
        except Exception as e:  # ImportError, or whatever a broken package raises
            problem = single_line(f"{type(e).__name__}: {e}")[:200]
            raise StageError(
                f"stage {name!r} needs {package}, which is installed but fails to import "
                f"({problem}); reinstall it: pip install --force-reinstall {package}"
            ) from None
    return importlib.import_module(stage.module_name)
