"""The notebook helpers: comparisons, progress bars and attention weights for the chapters.

The exercise checkers have their own tests (`test_exercises.py`, `test_exercises_passes.py`)."""

import io
import math
import random
import re

from microgpt.book.notebook import (
    attention_weights,
    cmp,
    flatten,
    progress,
    show_source,
    train_live,
)
from microgpt.config import GPTConfig
from microgpt.engine import Value
from microgpt.model import init_weights

# ----------------------------------------------------------------------------
# cmp, show_source, progress


def test_cmp_exact_approximate_and_different(capsys):
    assert cmp("same", [1.0, 2.0], [1.0, 2.0])
    assert "exact: True" in capsys.readouterr().out
    assert cmp("close", [1.0, 2.0], [1.0, 2.0 + 1e-12])
    out = capsys.readouterr().out
    assert "exact: False" in out and "approximate: True" in out
    assert not cmp("far", [[1.0], [2.0]], [[1.0], [2.5]])
    assert "maxdiff: 5.0e-01" in capsys.readouterr().out
    assert not cmp("size", [1.0], [1.0, 2.0])
    assert "size differs" in capsys.readouterr().out


def test_flatten_reads_values_dicts_and_nesting():
    assert flatten({"b": [Value(2.0)], "a": ([1, 3],)}) == [1.0, 3.0, 2.0]


def test_show_source_prints_plain_source_outside_a_notebook(capsys):
    show_source(flatten)
    assert capsys.readouterr().out.startswith("def flatten(x):")


def carriage_returns_resolved(text):
    """What a notebook keeps of a stream: text before a "\\r" on its line is dropped."""
    return re.sub(r".*\r(?=[^\n])", "", text)


def test_progress_yields_everything_and_ends_deterministically(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    items = list(progress(range(7), label="work", status=lambda i: f"item {i}", every=0.0))
    assert items == list(range(7))
    assert carriage_returns_resolved(out.getvalue()) == ("work [" + "#" * 30 + "] 7/7 item 6\n")


class FakeRun:
    def train(self, num_steps):
        return ((step, 3.0 - step / 10) for step in range(num_steps))


def test_train_live_logs_every_n_steps_and_returns_losses(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    losses = train_live(FakeRun(), 5, log_every=2)
    assert losses == [3.0, 2.9, 2.8, 2.7, 2.6]
    lines = carriage_returns_resolved(out.getvalue()).splitlines()
    assert lines[:3] == [
        "step    2 /    5 | loss 2.9000",
        "step    4 /    5 | loss 2.7000",
        "step    5 /    5 | loss 2.6000",
    ]
    assert lines[3].startswith("train [") and lines[3].endswith("5/5 loss 2.6000")


# ----------------------------------------------------------------------------
# attention_weights


def test_attention_weights_are_distributions_over_earlier_positions():
    cfg = GPTConfig()
    weights = init_weights(cfg, 27, random.Random(0))
    att = attention_weights(cfg, weights, [26, 4, 12, 12, 0])
    assert len(att) == cfg.n_layer and len(att[0]) == cfg.n_head
    for pos, row in enumerate(att[0][2]):
        assert len(row) == pos + 1 and math.isclose(sum(row), 1.0)
