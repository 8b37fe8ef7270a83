"""Checks of what the book's helpers are called with, beyond the package's own
(`microgpt.arguments`): stage names, models that build a graph, token ids, runs and
notebooks. Each is a `check(value, label) -> value`, for `@checked`."""

from .. import stages
from ..arguments import ArgumentError, sequence, shown
from ..train import Run


def stage_name(value, label):
    """The name of a stage that runs here."""
    if not isinstance(value, str) or value not in stages.BY_NAME:
        raise ArgumentError(
            f"{label} must be a stage's name, one of: {', '.join(stages.stage_names())}; "
            f"not {shown(value)}"
        )
    try:
        stages.load(value)
    except stages.StageError as e:
        raise ArgumentError(f"{label}: {e}") from None
    return value


def stage_list(value, label):
    """Names of stages that run here: a list, or one name (a str is one stage, not its
    letters)."""
    found = [value] if isinstance(value, str) else sequence(value, label, "stage names")
    if not found:
        raise ArgumentError(f"{label} is empty; name at least one stage, for example ['flat']")
    for name in found:
        stage_name(name, label)
    if len(set(found)) != len(found):
        raise ArgumentError(f"{label} names a stage twice")
    return found


def run(value, label):
    """A `Run`, or anything that trains as one (`.train(num_steps)` yields (step, loss))."""
    if not isinstance(value, Run) and not callable(getattr(value, "train", None)):
        raise ArgumentError(
            f"{label} must be a Run (Run(docs, stages.load('flat'))), not {shown(value)}"
        )
    return value


def graph_model(value, label):
    """A model of a stage that builds a graph (`baseline` to `tape`): the graph-free
    stages (`flat`, `tensor`, `jit`) compute on lists and arrays, with no node to count."""
    builds = ("loss", "logits_per_position", "tape")
    if not any(hasattr(value, name) for name in builds) or not hasattr(value, "vocab_size"):
        stage = type(value).__module__.rpartition(".")[2]
        raise ArgumentError(
            f"{label} must be the model of a stage that builds a graph (baseline to tape), "
            f"not {shown(value)} (of {stage})"
        )
    return value


def token_ids(ids, label, vocab_size, least=1, most=None):
    """`ids` as a list of `least` to `most` (None: any number of) token ids in
    [0, vocab_size)."""
    ids = sequence(ids, label, "token ids")
    ok = all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab_size for i in ids)
    if not ok:
        raise ArgumentError(
            f"{label} must be token ids from 0 to {vocab_size - 1}, not {shown(ids)}"
        )
    if len(ids) < least or (most is not None and len(ids) > most):
        count = f"{least} to {most}" if most is not None else f"at least {least}"
        raise ArgumentError(f"{label} must hold {count} token ids, not {len(ids)}")
    return ids


def notebook(value, label):
    """A notebook as nbformat reads it: `.cells`, each with a `cell_type` and a `source`."""
    cells = getattr(value, "cells", None)
    if not isinstance(cells, list) or not all(
        isinstance(c, dict) and hasattr(c, "cell_type") and hasattr(c, "source") for c in cells
    ):
        raise ArgumentError(
            f"{label} must be a notebook (nbformat.read(path, 4)), not {shown(value)}"
        )
    return value
