"""The per-step breakdown: phases add up to the step, and the collector is seen; the
browser's record of it, and chapter 11's table of both."""

import gc
import json
import re
from pathlib import Path

import pytest

from microgpt.arguments import ArgumentError
from microgpt.book.breakdown import (
    BROWSER_RECORD,
    MAX_RECORD_BYTES,
    PHASES,
    PhaseClock,
    collector_table,
    collector_time,
    measure,
    recorded_collector,
    step_breakdown,
)
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


# ---------------------------------------------------------------------------------------
# the browser's Python: lite/measure_collector.py's record, and chapter 11's table of it

CHAPTER_11 = Path(__file__).resolve().parent.parent / "book" / "11_gc_concurrency.ipynb"


def stored_stdout(nb, needle):
    """The stored stdout of the one code cell of `nb` whose source holds `needle`."""
    (cell,) = [
        c for c in nb["cells"] if c["cell_type"] == "code" and needle in "".join(c["source"])
    ]
    return "".join("".join(o["text"]) for o in cell["outputs"] if o.get("name") == "stdout")


def table_rows(text):
    """{label: [this Python's cell, the record's cell]} of collector_table's rows."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if not line.startswith(" ") and len(cells) == 3:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_browser_record_is_pyodides_python_314_measuring_chapter_11s_stages():
    record = recorded_collector()
    assert record["implementation"] == "CPython" and record["platform"] == "emscripten"
    assert record["python_version"].startswith("3.14.")
    assert record["python"].startswith(record["python_version"])
    assert record["steps"] == 5 and set(record["stages"]) == {"fused_norm", "gc"}
    assert len(record["threshold"]) == 3
    fused, paused = record["stages"]["fused_norm"], record["stages"]["gc"]
    generations = record["callback_generations"]
    assert generations["automatic"] == sorted(int(g) for g in fused["collector_by_generation"])
    assert [generations[f"gc.collect({n})"] for n in (0, 1, 2)] == [[0], [1], [2]]
    assert paused["ms_per_step"]["collector"] == 0 and paused["collector_by_generation"] == {}
    by_generation = sum(ms for _, ms in fused["collector_by_generation"].values())
    assert fused["ms_per_step"]["collector"] == pytest.approx(by_generation, rel=0.05)


def test_chapter_11_shows_the_record_beside_its_own_breakdown():
    nb = json.loads(CHAPTER_11.read_text("utf-8"))
    record = recorded_collector()
    text = stored_stdout(nb, "collector_table(")
    rows = table_rows(text)
    version, thresholds = re.match(
        r"CPython (\S+); collector thresholds (\(.*\))", stored_stdout(nb, "get_threshold()")
    ).groups()
    header = text.splitlines()[0].split()
    assert header == ["CPython", version, record["implementation"], record["python_version"]]
    assert f"(Pyodide {record['pyodide']}, {record['date'][:10]})" in text.splitlines()[1]
    assert rows["collector thresholds"] == [thresholds, str(tuple(record["threshold"]))]
    assert f"recorded {record['date']} by: {record['command']}" in text
    assert str(record["callback_generations"]) in text
    # the right column is the record's
    for name, stage in record["stages"].items():
        ms = stage["ms_per_step"]
        assert rows[f"{name}: CPU ms per step"][1] == f"{sum(ms.values()):.2f}"
        assert rows[f"{name}: collector ms"][1] == f"{ms['collector']:.2f}"
        for g, (count, gen_ms) in stage["collector_by_generation"].items():
            assert rows[f"{name}: generation {g}"][1] == f"{count:.1f} per step, {gen_ms:.2f} ms"
    # the left column is the breakdown cell's, above it
    breakdown = stored_stdout(nb, "measure(name, docs, steps=5)")
    collector = dict(re.findall(r"^(\w+) +CPU ms per step:.* collector (\S+)$", breakdown, re.M))
    assert {name: rows[f"{name}: collector ms"][0] for name in collector} == collector
    fused = breakdown.split("\ngc ")[0]
    shown_here = re.findall(r"generation (\d+): +(\S+) collections per step, (\S+) ms", fused)
    assert shown_here, breakdown
    for g, count, gen_ms in shown_here:
        assert rows[f"fused_norm: generation {g}"][0] == f"{count} per step, {gen_ms} ms"


def test_chapter_11s_claims_about_the_browsers_python_hold_in_its_table():
    """The prose after the table: a higher first threshold, every collection of a step
    reported as generation 1, the generation 0 row 3.11's alone, fewer collections per
    step than 3.11, and none during a step of `gc` in either Python."""
    rows = table_rows(stored_stdout(json.loads(CHAPTER_11.read_text("utf-8")), "collector_table("))
    here, there = (eval(t) for t in rows["collector thresholds"])  # two tuples of ints
    assert there[0] > here[0]
    assert recorded_collector()["callback_generations"]["automatic"] == [1]
    assert rows["fused_norm: generation 0"][0] != "-" and rows["fused_norm: generation 0"][1] == "-"
    counts = [[0.0, 0.0]]
    for label, cells in rows.items():
        if label.startswith("fused_norm: generation"):
            counts.append([float(c.split()[0]) if c != "-" else 0.0 for c in cells])
    assert sum(c[1] for c in counts) < sum(c[0] for c in counts)
    assert rows["gc: collections"] == ["none", "none"]


def test_a_bad_collector_record_is_one_line(tmp_path):
    good = json.loads(BROWSER_RECORD.read_text("utf-8"))
    no_stage = dict(good, stages={"gc": {"ms_per_step": {}}})
    gc_stage = dict(good["stages"]["gc"], collector_by_generation={"²": [1.0, 1.0]})
    not_a_generation = dict(good, stages={"gc": gc_stage})
    cases = {
        "missing.json": (None, "no such file"),
        "folder": ("folder", "is a directory"),
        "text.json": (b"not json", "not a JSON record"),
        "latin1.json": (b"\xff\xfe{}", "not a JSON record"),
        "list.json": (b"[1, 2]", "not a collector record (not a JSON object)"),
        "stage.json": (json.dumps(no_stage).encode(), "not a collector record (stage 'gc'"),
        "big.json": (b" " * (MAX_RECORD_BYTES + 1), "larger than"),
        "generation.json": (json.dumps(not_a_generation).encode(), "(stage 'gc' lacks"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content == "folder":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        with pytest.raises(ArgumentError) as raised:
            recorded_collector(path)
        message = str(raised.value)
        assert expected in message and str(path) in message and "\n" not in message, message


def test_collector_table_refuses_what_it_cannot_show(gc_on):
    record = recorded_collector()
    with pytest.raises(ArgumentError, match=r"breakdowns must be \{stage: measure"):
        collector_table({"gc": {"collector": 0.0}}, record)
    with pytest.raises(ArgumentError, match="record must be recorded_collector"):
        collector_table({"gc": measure("gc", DOCS, steps=1)}, {"stages": {}})
    with pytest.raises(ArgumentError, match="the record has no stage flat; it has fused_norm, gc"):
        collector_table({"flat": measure("flat", DOCS, steps=1)}, record)
