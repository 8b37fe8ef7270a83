"""The per-step breakdown: phases add up to the step, and the collector is seen."""

import gc

import pytest

from microgpt.book.breakdown import PHASES, PhaseClock, collector_time, measure, step_breakdown
from microgpt.stages import graph

DOCS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"]


@pytest.fixture
def gc_on():
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()


@pytest.fixture
def gc_off():
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


@pytest.mark.parametrize("stage", ["baseline", "numeric_ce", "gc", "flat"])
def test_phases_are_non_negative_and_add_up_to_the_step(stage, gc_on):
    result = measure(stage, DOCS, steps=2)
    ms = result.ms_per_step()
    assert set(ms) == set(PHASES)
    assert all(v is not None and v >= 0 for v in ms.values()), ms
    step_ms = result.step_seconds / result.steps * 1000
    assert sum(ms.values()) == pytest.approx(step_ms, rel=0.05)


def test_the_baseline_collector_is_seen_with_gc_on(gc_on):
    ms = step_breakdown("baseline", DOCS, steps=2)
    assert ms["collector"] > 0
    assert ms["backward"] > 0 and ms["optimizer"] > 0


def test_no_collector_time_with_gc_disabled(gc_off):
    ms = step_breakdown("baseline", DOCS, steps=1)
    assert ms["collector"] == 0
    assert not gc.isenabled()


def test_the_gc_stage_pauses_the_collector(gc_on):
    assert step_breakdown("gc", DOCS, steps=2)["collector"] == 0


def test_a_single_call_stage_has_no_separate_backward(gc_on):
    pytest.importorskip("numba")
    ms = step_breakdown("jit", DOCS, steps=1)
    assert ms["backward"] is None and ms["optimizer"] is None and ms["forward"] > 0


def test_the_stage_is_left_unchanged_and_the_pool_empty(gc_on):
    before = dict(vars(graph.Model))
    measure("graph", DOCS, steps=2, pooling=False)
    measure("graph", DOCS, steps=2)
    assert dict(vars(graph.Model)) == before
    assert graph.pool_size() == 0
    assert not [cb for cb in gc.callbacks if isinstance(getattr(cb, "__self__", None), PhaseClock)]


def test_collector_time_counts_collections(gc_on):
    def make_garbage():
        for _ in range(20_000):
            a = []
            a.append(a)
        return "done"

    result, ms, counts = collector_time(make_garbage)
    assert result == "done"
    assert ms > 0 and counts.get(0, 0) > 0
