"""`python -m microgpt bench`: the commands as users type them, the files they write and
the errors they refuse with (never the timings themselves, which are the machine's).

The measuring runs time two stages for two steps; `--from-record` renders their record
again without measuring, so the tests of every output cost a fraction of a second each.
"""

import gc
import json
import os
import shutil
import sys
import types

import pytest
from helpers import ROOT, assert_one_line, makefile_command, run_cli

from microgpt import stages
from microgpt.tools import bench, report, timing
from microgpt.train import Run

TWO_STAGES = ["--stages", "flat,baseline", "--steps", "2", "--repeat", "2", "--samples", "2"]
README_TEXT = (
    "# Title\n\nbefore, with `<!-- bench` in prose\n\n"
    f"{report.README_START}\nold table\n{report.README_END}\n\nafter\n"
)


def bench_command(args, cwd, names_path, python=sys.executable):
    """Run a bench command line in `cwd`, as a user's shell would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env["MICROGPT_DATA"] = str(names_path)
    return run_cli(["bench", *args], cwd, env, timeout=300, python=python)


def one_line_error(done, code, problem):
    """The command failed the documented way: exit `code`, one line naming `problem`."""
    assert_one_line(done, code, "microgpt bench: error: ", problem)
    assert done.stdout == ""


def outside_markers(text):
    """The text before the start marker and after the end marker."""
    head, _, rest = text.partition(report.README_START)
    _, _, tail = rest.partition(report.README_END)
    return head, tail


@pytest.fixture(scope="module")
def measured(names_path, tmp_path_factory):
    """One measuring run as a user types it: two stages, two steps, two rounds."""
    tmp = tmp_path_factory.mktemp("bench")
    (tmp / "README.md").write_text(README_TEXT)
    args = [*TWO_STAGES, "--record", "rec.json", "--update-readme", "README.md"]
    done = bench_command(args, tmp, names_path)
    assert done.returncode == 0, done.stderr
    return types.SimpleNamespace(done=done, tmp=tmp, args=args)


@pytest.fixture
def from_record(measured, names_path, tmp_path):
    """Run `bench --from-record rec.json ARGS` in a folder holding the record and a README."""
    shutil.copy(measured.tmp / "rec.json", tmp_path / "rec.json")
    (tmp_path / "README.md").write_text(README_TEXT)

    def run(*args):
        return bench_command(["--from-record", "rec.json", *args], tmp_path, names_path)

    run.tmp = tmp_path
    return run


def test_record_holds_every_stage_in_pass_order_with_its_noise(measured):
    record = json.loads((measured.tmp / "rec.json").read_text())
    assert report.read_record(measured.tmp / "rec.json") == record
    assert record["command"] == "python -m microgpt bench " + " ".join(measured.args)
    assert (record["steps"], record["repeat"], record["samples"]) == (2, 2, 2)
    assert record["left_out"] == [] and not record["fallback"]
    baseline, flat = record["stages"]
    assert (baseline["name"], flat["name"]) == ("baseline", "flat")  # pass order, not as given
    assert (baseline["previous"], flat["previous"]) == (None, "baseline")
    for row in record["stages"]:
        assert len(row["cpu_ms_per_step_rounds"]) == len(row["ms_per_step_rounds"]) == 2
        assert row["cpu_ms_per_step"] > 0 and row["ms_per_step"] > 0
        assert row["sample_ms_per_name"] > 0 and row["peak_mib"] > 5  # Python is never smaller
        assert 0 <= row["spread"] < 5
        assert row["est_full_run_s"] > row["cpu_ms_per_step"] / 1000
    assert baseline["cpu_speedup_vs_baseline"] == 1.0
    assert baseline["cpu_speedup_vs_previous"] is None and baseline["noise_vs_previous"] is None
    ratio = baseline["cpu_ms_per_step"] / flat["cpu_ms_per_step"]
    assert flat["cpu_speedup_vs_previous"] == flat["cpu_speedup_vs_baseline"] == ratio
    assert ratio > 3 and flat["noise_vs_previous"] is False  # flat is ~30x: never within noise
    assert "round 1/2 (CPU ms/step): baseline " in measured.done.stderr
    assert "round 2/2 (CPU ms/step): " in measured.done.stderr
    for row in record["stages"]:  # the same rounds, timed again with the collector off
        assert len(row["off_cpu_chunk_rounds"]) == 2 and row["cpu_ms_per_step_off"] > 0
        assert row["collector_share"] == 1 - row["cpu_ms_per_step_off"] / row["cpu_ms_per_step"]
        assert list(row["cpu_speedup_vs_baseline_by_window"]) == ["2"]  # the only window
    off = baseline["cpu_ms_per_step_off"] / flat["cpu_ms_per_step_off"]
    assert flat["cpu_speedup_vs_baseline_off"] == off


def test_readme_section_is_the_record_s_table_and_nothing_else_changed(measured):
    readme = (measured.tmp / "README.md").read_text()
    record = report.read_record(measured.tmp / "rec.json")
    assert outside_markers(readme) == outside_markers(README_TEXT)
    table = report.table_in(readme, "README.md")
    assert table == report.render_markdown(record)
    lines = table.splitlines()
    assert lines[0].startswith("| stage | ms/step | CPU ms/step | spread |")
    assert [line.split("|")[1].strip() for line in lines[2:4]] == ["`baseline`", "`flat`"]
    assert all(line.count("|") == lines[0].count("|") for line in lines[1:4])
    assert f"Generated by `{record['command']}`: median of 2 interleaved rounds" in table
    assert "old table" not in readme


def test_printed_table_is_the_record_s(measured):
    record = report.read_record(measured.tmp / "rec.json")
    assert measured.done.stdout == report.render_text(record)
    assert measured.done.stdout.splitlines()[2].startswith("baseline ")


def test_from_record_renders_every_file_without_measuring(measured, from_record):
    tmp = from_record.tmp
    done = from_record("--update-readme", "README.md", "--markdown", "t.md", "--json", "c.json")
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no rounds: no measuring
    assert done.stdout == measured.done.stdout
    assert (tmp / "README.md").read_text() == (measured.tmp / "README.md").read_text()
    assert (tmp / "t.md").read_text() == report.table_in((tmp / "README.md").read_text(), "")
    assert (tmp / "c.json").read_bytes() == (measured.tmp / "rec.json").read_bytes()


def test_from_record_plots(from_record):
    pytest.importorskip("matplotlib")
    done = from_record("--plot", "chart.png")
    assert done.returncode == 0, done.stderr
    assert (from_record.tmp / "chart.png").read_bytes().startswith(b"\x89PNG\r\n")


def broken_records(text):
    """(file name, bytes, what the error says) of records that must not render."""
    record = json.loads(text)
    no_key = {k: v for k, v in record.items() if k != "steps"}
    row_without = json.loads(text)
    del row_without["stages"][1]["spread"]
    wrong_type = json.loads(text)
    wrong_type["stages"][0]["cpu_ms_per_step"] = "fast"
    return [
        ("half.json", text[: len(text) // 2].encode(), "not JSON"),
        ("empty.json", b"", "not JSON"),
        ("list.json", b"[1, 2]\n", "not a benchmark record"),
        ("future.json", json.dumps({**record, "record_format": 99}).encode(), "format 1"),
        ("no-key.json", json.dumps(no_key).encode(), "no 'steps'"),
        ("no-spread.json", json.dumps(row_without).encode(), "no 'stages/flat/spread'"),
        ("wrong-type.json", json.dumps(wrong_type).encode(), "cannot be rendered"),
        ("latin1.json", '{"command": "é"}'.encode("latin-1"), "not UTF-8"),
    ]


def test_a_missing_or_broken_record_is_one_line_and_writes_nothing(from_record):
    tmp = from_record.tmp
    cases = [("gone.json", None, "gone.json: no such file")]
    cases += [("folder", "a folder", "folder: is a directory")]
    cases += broken_records((tmp / "rec.json").read_text())
    for name, data, problem in cases:
        if data == "a folder":
            (tmp / name).mkdir()
        elif data is not None:
            (tmp / name).write_bytes(data)
        args = ["--from-record", name, "--update-readme", "README.md", "--markdown", "t.md"]
        done = bench_command(args, tmp, "unused")
        one_line_error(done, 1, f"--from-record {name}: ")
        assert problem in done.stderr, done.stderr
        assert (tmp / "README.md").read_text() == README_TEXT
        assert not (tmp / "t.md").exists()


@pytest.mark.parametrize(
    "readme, problem",
    [
        (None, "README.md: no such file"),
        ("# no table here\n", "markers"),
        (f"only the start\n{report.README_START}\n", "markers"),
        (f"{report.README_END}\nreversed\n{report.README_START}\n", "markers"),
    ],
)
def test_a_readme_without_markers_is_one_line_and_left_as_it_was(from_record, readme, problem):
    path = from_record.tmp / "README.md"
    path.unlink()
    if readme is not None:
        path.write_text(readme)
    one_line_error(from_record("--update-readme", "README.md", "--json", "c.json"), 2, problem)
    if readme is None:
        assert not path.exists()
    else:
        assert path.read_text() == readme
    assert not (from_record.tmp / "c.json").exists()


def test_from_record_refuses_flags_that_measure_and_its_own_path_as_output(from_record):
    one_line_error(from_record("--steps", "5"), 2, "--steps does not go with it")
    one_line_error(from_record("--stages", "flat"), 2, "--stages does not go with it")
    done = from_record("--json", "rec.json")
    one_line_error(done, 2, "--json rec.json is the same file as --from-record")
    assert report.read_record(from_record.tmp / "rec.json")  # not overwritten


def test_make_readme_table_writes_the_record_and_the_readme_s_table_only(names_path, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make here")
    narrower = "--stages flat,baseline --steps 1 --repeat 1 --samples 0".split()  # last wins
    python, args = makefile_command("readme-table", ["ARGS=" + " ".join(narrower)])
    assert args[-len(narrower) :] == narrower
    written = " ".join(args)
    assert (
        "--record microgpt/tools/record.json" in written and "--update-readme README.md" in written
    )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    (tmp_path / "microgpt" / "tools").mkdir(
        parents=True
    )  # the repository's layout, a copy of its README
    done = bench_command(args, tmp_path, names_path, python)
    assert done.returncode == 0, done.stderr
    record = report.read_record(tmp_path / "microgpt" / "tools" / "record.json")
    assert [row["name"] for row in record["stages"]] == ["baseline", "flat"]
    assert (record["steps"], record["repeat"], record["samples"]) == (1, 1, 0)
    assert all(row["sample_ms_per_name"] is None for row in record["stages"])
    updated = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert outside_markers(updated) == outside_markers(readme)
    assert report.table_in(updated, "README.md") == report.render_markdown(record)
    assert "| - |" in report.render_markdown(record)  # no sampling: a dash, not a zero


def test_readme_table_is_the_rendering_of_the_committed_record():
    """The README's table and microgpt/tools/record.json cannot disagree."""
    record_path = ROOT / "microgpt" / "tools" / "record.json"
    if not record_path.is_file():
        pytest.skip("no microgpt/tools/record.json yet: make readme-table writes it")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = report.table_in(readme, "README.md")
    assert table == report.render_markdown(report.read_record(record_path))


# ---------------------------------------------------------------------------------------
# stages that cannot run: left out of the default benchmark, an error when named


def breaking(monkeypatch, import_fails="fused", run_fails="gc"):
    """Make one stage's import fail and another's model fail when it is built."""
    real_load = stages.load

    class Broken:
        def __init__(self, *args):
            raise RuntimeError("half-written\nsecond line")

    def load(name):
        if name == import_fails:
            raise SyntaxError("invalid syntax (fused.py, line 3)")
        if name == run_fails:
            return types.SimpleNamespace(Model=Broken)
        return real_load(name)

    monkeypatch.setattr(stages, "load", load)


def test_default_stages_that_cannot_run_are_left_out_with_why(
    names_path, tmp_path, monkeypatch, capsys
):
    breaking(monkeypatch)
    monkeypatch.setattr(bench, "default_stages", lambda: ["fused", "gc", "flat"])
    (tmp_path / "README.md").write_text(README_TEXT)
    argv = ["--steps", "1", "--repeat", "1", "--samples", "0", "--data", str(names_path)]
    argv += ["--record", str(tmp_path / "rec.json"), "--update-readme", str(tmp_path / "README.md")]
    assert bench.main(argv) == 0
    record = report.read_record(tmp_path / "rec.json")
    assert [row["name"] for row in record["stages"]] == ["flat"]
    reasons = {item["name"]: item["reason"] for item in record["left_out"]}
    assert reasons["fused"] == "fails to import (SyntaxError: invalid syntax (fused.py, line 3))"
    assert reasons["gc"] == "fails to run (RuntimeError: half-written\\nsecond line)"
    readme = (tmp_path / "README.md").read_text()
    assert "Not measured: `fused` fails to import (SyntaxError" in readme
    out, err = capsys.readouterr()
    assert "left out: gc fails to run" in err and "not measured: `fused`" in out
    assert record["stages"][0]["spread"] is None  # one round says nothing of the noise


def test_rounds_alternate_and_a_stage_failing_in_a_round_is_left_out(monkeypatch):
    timed, settings = [], []

    def time_round(module, docs, num_steps, num_samples, budget=1.0, sample_budget=1.0,
                   collector_off=False, off_first=False):  # fmt: skip
        if budget:  # not the warm-up
            timed.append(module)
            settings.append((collector_off, off_first))
        if budget and module == "gc" and timed.count("gc") == 2:
            raise RuntimeError("flaky")
        return timing.RoundTiming([1.0], [1.0], None, 1)

    monkeypatch.setattr(timing, "time_round", time_round)
    monkeypatch.setattr(timing, "measure_peak_mib", lambda *args: 10.0)
    left_out = []
    modules = {name: name for name in ["fused", "gc", "flat"]}
    results = timing.run_bench(modules, [], 5, 3, 0, None, lambda line: None, left_out)
    assert timed == ["fused", "gc", "flat", "flat", "gc", "fused", "fused", "flat"]
    # every round also times the collector off, which goes first in every other round
    assert settings == [(True, False)] * 3 + [(True, True)] * 3 + [(True, False)] * 2
    assert [r.name for r in results] == ["fused", "flat"]
    assert [len(r.cpu_ms_per_step_rounds) for r in results] == [3, 3]
    assert left_out == [{"name": "gc", "reason": "fails to run (RuntimeError: flaky)"}]


@pytest.mark.parametrize(
    "named, problem",
    [
        ("gc,flat", "stage 'gc' fails to run (RuntimeError: half-written\\nsecond line)"),
        ("fused,flat", "stage 'fused' cannot be imported (SyntaxError: invalid syntax"),
    ],
)
def test_a_named_stage_that_cannot_run_is_one_line(named, problem, monkeypatch, capsys):
    breaking(monkeypatch)
    assert bench.main(["--stages", named, "--steps", "1", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err, err


def test_stage_without_its_package_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(stages, "missing_requirements", lambda s: list(s.requires))
    code = bench.main(["--stages", "baseline,tensor"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install numpy" in err


# ---------------------------------------------------------------------------------------
# the figures, from made-up rounds


def test_speedups_noise_and_estimates_from_medians(names_docs):
    slow = timing.StageResult("baseline", [100.0, 300.0, 200.0], [90.0, 250.0, 190.0])
    slow.sample_ms_rounds, slow.peak_mib = [10.0, 10.0, 10.0], 50.0
    fast = timing.StageResult("flat", [2.0, 1.0, 9.0], [2.0, 1.0, 8.0], [1.0, 2.0, 3.0], 20.0)
    same = timing.StageResult("tensor", [2.1, 1.1, 9.0], [2.1, 1.1, 8.0], [1.0, 1.0, 1.0], 30.0)
    rows = report.summarize([slow, fast, same], names_docs, 30)
    assert [r["ms_per_step"] for r in rows] == [200.0, 2.0, 2.1]
    assert [r["cpu_ms_per_step"] for r in rows] == [190.0, 2.0, 2.1]
    assert rows[1]["cpu_speedup_vs_baseline"] == rows[1]["cpu_speedup_vs_previous"] == 95.0
    assert rows[1]["speedup_vs_baseline"] == 100.0  # wall time, kept beside
    assert rows[2]["cpu_speedup_vs_previous"] == pytest.approx(2.0 / 2.1)
    assert [r["noise_vs_previous"] for r in rows] == [None, False, True]
    assert rows[2]["previous"] == "flat"
    assert rows[1]["spread"] == pytest.approx((5.0 - 1.5) / 2.0)  # quartiles 1.5 and 5
    assert report.table_cells(rows[2])[4:6] == ("90.5x", "~1.0x")  # 190 / 2.1; within noise
    scale = timing.full_run_scale(names_docs, 30)
    assert 0.9 < scale < 1.1  # the first 30 shuffled names are about as long as the first 1000
    assert rows[1]["est_full_run_s"] == pytest.approx(2.0 * scale + 2.0 * 20 / 1000)


class Recorder:
    """A stage whose steps record whether the collector ran during them."""

    seen = []

    class Model:
        def __init__(self, *args, **kwargs):
            pass

        def train_step(self, tokens, step, num_steps):
            Recorder.seen.append(gc.isenabled())
            return 0.0


@pytest.mark.parametrize("off_first", [False, True])
def test_a_round_times_the_same_steps_with_the_collector_running_and_off(names_docs, off_first,
                                                                         monkeypatch):  # fmt: skip
    def recorded_run(docs, module, seed):  # a real run's names, the recorder's models
        run = Run(docs, stages.load("flat"), seed=seed)
        run.model = Recorder.Model()
        return run

    monkeypatch.setattr(Run, "fresh_model", lambda run: Recorder.Model())
    monkeypatch.setattr(Recorder, "seen", [])
    monkeypatch.setattr(timing, "Run", recorded_run)
    before = gc.isenabled()
    t = timing.time_round(Recorder, names_docs, 10, 0, 0, 0, collector_off=True,
                          off_first=off_first)  # fmt: skip
    assert gc.isenabled() == before
    off_then_on = [False] * 10 + [True] * 10
    assert Recorder.seen == (off_then_on if off_first else off_then_on[::-1])
    assert len(t.cpu_chunks) == len(t.off_cpu_chunks) == 2  # two chunks of 5 steps each


def test_windows_are_the_first_chunks_per_step():
    assert timing.windows_of(100) == [20, 50, 100] and timing.windows_of(20) == [20]
    assert timing.windows_of(30) == [20, 30]
    # 4 chunks of 5 steps, as shares of the 20 steps' ms per step: 1, 1, 3, 3 -> 8 ms/step
    rounds = [[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]]
    assert timing.window_ms(rounds, 20, 20) == 8.0
    assert timing.window_ms(rounds, 20, 10) == 2.0 * 20 / 10  # steps 1-10: 4 ms/step


def with_collector(name, on_chunks, off_chunks):
    result = timing.StageResult(name)
    for on, off in zip(on_chunks, off_chunks):
        result.add(timing.RoundTiming(on, on, None, 1, off, off))
    return result


def test_collector_share_credits_off_and_windows_from_made_up_rounds(names_docs):
    # baseline: 100 ms/step over 40 steps, 30 of it the collector's, all in steps 21-40
    base = with_collector(
        "baseline", [[6.25] * 4 + [18.75] * 4] * 3, [[6.25] * 4 + [11.25] * 4] * 3
    )
    flat = with_collector("flat", [[0.25] * 8] * 3, [[0.25] * 8] * 3)
    rows = report.summarize([base, flat], names_docs, 40)
    assert rows[0]["collector_share"] == pytest.approx(0.3)
    assert rows[1]["cpu_speedup_vs_baseline"] == 50.0
    assert rows[1]["cpu_speedup_vs_baseline_off"] == 35.0
    assert rows[1]["collector_share"] == 0.0
    windows = rows[1]["cpu_speedup_vs_baseline_by_window"]
    assert list(windows) == ["20", "40"]
    assert windows["20"] == {"on": 25.0, "off": 25.0} and windows["40"]["on"] == 50.0
    record = {"stages": rows}
    columns = report.collector_columns(record)
    assert columns[-1] == "vs baseline over 20 / 40 steps"
    assert report.collector_cells(rows[1])[1:] == (
        "2.0", "2.0", "0%", "50.0x", "35.0x", "50.0x", "35.0x", "25.0x / 50.0x",
    )  # fmt: skip
    assert "differ by more than 10% for flat" in report.collector_note(record)
    flat_even = with_collector(
        "flat", [[0.125] * 4 + [0.375] * 4] * 3, [[0.125] * 4 + [0.375] * 4] * 3
    )
    record = {"stages": report.summarize([base, flat_even], names_docs, 40)}
    assert "agree within 10% for every stage" in report.collector_note(record)


def test_one_slow_chunk_of_one_round_does_not_move_the_median():
    rounds = [[10.0, 1.0], [1.0, 10.0], [1.0, 1.0]]  # a slow second in each of two rounds
    result = timing.StageResult("flat")
    for chunks in rounds:
        result.add(timing.RoundTiming(chunks, chunks, None, 1))
    assert result.ms_per_step_rounds == [11.0, 11.0, 2.0]
    assert result.cpu_ms_per_step == result.ms_per_step == 2.0  # the median of rounds: 11


def test_one_round_has_no_spread_and_no_noise_mark():
    assert timing.spread([5.0]) is None and timing.overlap([5.0], [5.0, 5.1]) is None
    assert report.fmt_speedup(2.0, None) == "2.0x" and report.fmt_percent(None) == "-"


def test_a_repeat_trains_the_very_model_of_the_run(names_docs):
    """`Run.fresh_model` skips the shuffle of a new Run: the twin must be the same model."""
    run = Run(names_docs, stages.load("flat"), seed=42)
    twin = run.fresh_model()
    tokens = run.tokenizer.encode(run.docs[0])
    assert twin.train_step(tokens, 0, 1000) == run.model.train_step(tokens, 0, 1000)


def test_readme_table_is_replaced_not_appended():
    text = f"a\n{report.README_END}\n{report.README_START}\nx\n{report.README_END}\nb\n"
    once = report.replace_between_markers(text, "| t |\n", "README.md")
    assert once == f"a\n{report.README_END}\n{report.README_START}\n| t |\n{report.README_END}\nb\n"
    assert report.replace_between_markers(once, "| t |\n", "README.md") == once
    assert report.table_in(once, "README.md") == "| t |\n"
    with pytest.raises(timing.BenchError, match="README.md: no .* markers"):
        report.replace_between_markers("no markers\n", "| t |\n", "README.md")


def test_gc_tuning_of_one_stage_does_not_leak_into_the_next():
    before = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    with timing.isolated_gc():
        gc.freeze()
        gc.set_threshold(100_000, 50, 50)
        gc.disable()
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_round_s_collector_walks_only_what_the_round_makes():
    """Objects alive before a round (other stages' modules) are out of its collector's
    walks, as in a process of the stage's own; afterwards nothing stays frozen."""
    ballast = [[i] for i in range(50_000)]  # containers the collector would walk
    walked = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            walked.append(len(gc.get_objects(generation=2)))

    gc.callbacks.append(count)
    try:
        with timing.isolated_gc():
            gc.collect()
    finally:
        gc.callbacks.remove(count)
    assert walked and walked[-1] < len(ballast)
    assert gc.get_freeze_count() == 0
    del ballast


def test_peak_memory_is_the_child_s_own(names_path):
    """Linux's ru_maxrss survives exec: a child of a big parent must not inherit its size."""
    ballast = bytearray(300 * 2**20)
    ballast[:: 2**12] = b"\1" * len(ballast[:: 2**12])  # touch every page: it is resident
    peak = timing.measure_peak_mib("baseline", names_path, 1, 1)
    del ballast
    assert 5 < peak < 200


# ---------------------------------------------------------------------------------------
# flags: refused in one line before any measuring


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--steps", "0"], "between 1 and 1000"),
        (["--steps", "1001"], "between 1 and 1000"),
        (["--steps", "two"], "not a whole number"),
        (["--repeat", "0"], "at least 1"),
        (["--samples", "-1"], "must be at least 0"),
        (["--stages", "baseline,turbo"], "unknown stage 'turbo'; choose from: baseline, cleanup"),
        (["--stages", ","], "at least one stage"),
        (["--stages", "baseline,baseline"], "names a stage twice"),
        (["--from-record", ""], "is empty"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, problem, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err, err


def test_unusable_output_paths_exit_2_before_measuring(tmp_path, capsys):
    no_markers = tmp_path / "README.md"
    no_markers.write_text("# no table here\n")
    for argv, problem in [
        (["--record", str(tmp_path)], "is a directory"),
        (["--json", str(tmp_path)], "is a directory"),
        (["--update-readme", str(tmp_path / "nope.md")], "no such file"),
        (["--update-readme", str(no_markers)], "markers"),
        (["--record", str(no_markers), "--update-readme", str(no_markers)], "same file"),
    ]:
        with pytest.raises(SystemExit) as exc:
            bench.main(["--stages", "baseline", *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and problem in err, err
    assert no_markers.read_text() == "# no table here\n"


def test_plot_without_matplotlib_is_one_line(tmp_path, capsys, monkeypatch):
    real_find_spec = bench.find_spec
    monkeypatch.setattr(
        bench, "find_spec", lambda n: None if n == "matplotlib" else real_find_spec(n)
    )
    code = bench.main(["--plot", str(tmp_path / "b.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install matplotlib" in err
    assert not (tmp_path / "b.png").exists()
