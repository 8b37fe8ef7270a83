"""`python -m microgpt bench --data-parallel`: PyTorch's data-parallel runs measured into a
section of the record, and the README's table rendered from it; and the run it launches
(`microgpt.tools.parallel_run`), whose N processes train what one process trains with the
whole batch.

The runs that launch processes load PyTorch in each: they are `slow`. The timings are the
machine's and are never asserted; the tests check what was written and how it was derived.
"""

import json
import shutil

import pytest
from helpers import makefile_command

from microgpt.config import GPTConfig
from microgpt.tools import bench, parallel_run, report

pytest.importorskip("torch")

ROOT_RECORD = bench.Path(__file__).resolve().parent.parent / "microgpt" / "tools" / "record.json"
README_TEXT = (
    "# Title\n\n"
    f"{report.README_START}\nstages' table\n{report.README_END}\n\n"
    f"between\n\n{report.DP_MARKERS[0]}\nold\n{report.DP_MARKERS[1]}\n\nafter\n"
)


def case(width, processes, threads):
    shape = [1, width, 4, 16]
    return {"width": width, "shape": shape, "processes": processes, "threads": threads, "steps": 2}


def test_rows_are_medians_and_speedups_over_one_process_of_one_thread():
    cases = {"a": case(16, 1, 1), "b": case(16, 2, 1)}
    rounds = {
        "a": [{"tokens_per_s": t, "ms_per_step": 10.0, "cpu_busy": 1.0} for t in (100, 90, 110)],
        "b": [{"tokens_per_s": t, "ms_per_step": 6.0, "cpu_busy": 1.9} for t in (150, 160, 170)],
    }
    one, two = report.data_parallel_rows(cases, rounds)
    assert (one["tokens_per_s"], one["speedup_vs_one"], one["noise_vs_one"]) == (100, 1.0, None)
    assert (two["tokens_per_s"], two["speedup_vs_one"], two["cpu_busy"]) == (160, 1.6, 1.9)
    assert two["noise_vs_one"] is False  # 150..170 against 90..110: apart
    assert two["spread"] == pytest.approx(10 / 160)


def test_a_round_is_process_0_s_tokens_over_its_wall_seconds():
    worker = {"wall_s": [0.5, 1.5], "tokens": [100, 300], "cpu_all_s": 3.0}
    assert report.data_parallel_round(worker) == {
        "tokens_per_s": 200.0,
        "ms_per_step": 1000.0,
        "cpu_busy": 1.5,
    }


def test_a_record_with_a_broken_section_is_one_line(tmp_path):
    record = json.loads(ROOT_RECORD.read_text())
    record["data_parallel"] = {"command": "x"}
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(record))
    with pytest.raises(report.BenchError, match="no 'data_parallel/python'.*readme-data-parallel"):
        report.read_record(path)


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--data-parallel", "--stages", "flat"], "--stages does not go with it"),
        (["--data-parallel", "--steps", "3"], "--steps does not go with it"),
        (["--data-parallel", "--plot", "x.png"], "--plot does not go with it"),
        (["--data-parallel", "--from-record", "r.json"], "--data-parallel does not go with it"),
        (["--data-parallel", "--record", "missing.json"], "puts the section into a record"),
    ],
)
def test_flags_that_do_not_go_with_data_parallel_exit_2_with_one_line(argv, problem, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err, err


@pytest.mark.parametrize("key", list(report.SECTIONS))
def test_the_readme_s_tables_are_the_rendering_of_the_committed_sections(key):
    record = report.read_record(ROOT_RECORD)
    if key not in record:
        pytest.skip(f"no {key} section in the record yet")
    markers, render = report.SECTIONS[key]
    readme = (ROOT_RECORD.parents[2] / "README.md").read_text(encoding="utf-8")
    assert report.table_in(readme, "README.md", markers) == render(record[key])


def test_a_new_measurement_of_the_stages_keeps_the_section(tmp_path):
    record = json.loads(ROOT_RECORD.read_text())
    section = json.loads(json.dumps(record.get("data_parallel") or made_section()))
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(record | {"data_parallel": section}))
    kept = bench.other_sections(str(path))
    assert kept["data_parallel"] == section
    others = {
        key: record[key] for key in report.SECTIONS if key in record and key != "data_parallel"
    }
    assert kept == others | {"data_parallel": section}
    readme = bench.with_section_tables(README_TEXT, {"data_parallel": section}, "README")
    assert report.table_in(readme, "README", report.DP_MARKERS) == (
        report.render_data_parallel(section)
    )
    assert bench.other_sections(str(tmp_path / "none.json")) == {}


def made_section():
    cases = {"a": case(16, 1, 1)}
    rounds = {"a": [{"tokens_per_s": 100, "ms_per_step": 10.0, "cpu_busy": 1.0}]}
    settings = {"repeat": 1, "warmup": 1, "names_per_step": 4}
    dataset = type("D", (), {"source": "names.txt", "is_fallback": False})()
    rows = report.data_parallel_rows(cases, rounds)
    return report.new_data_parallel_section("cmd", settings, dataset, {}, "2", rows)


@pytest.mark.slow
def test_two_processes_train_what_one_trains_with_the_whole_batch(names_path):
    """The equality of chapter 18, as the benchmark launches it: float64, every loss within
    1e-12, and the same tokens per step."""
    args = ["--data", str(names_path), "--steps", "3", "--warmup", "1"]
    one = parallel_run.launch(1, 1, [*args, "--batch-size", "8"])
    two = parallel_run.launch(2, 1, [*args, "--batch-size", "4"])
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["names_per_step"] == two["names_per_step"] == 8
    assert len(one["losses"]) == len(two["losses"]) == 4
    assert max(abs(a - b) for a, b in zip(one["losses"], two["losses"])) < 1e-12
    assert one["tokens"] == two["tokens"] and len(one["wall_s"]) == 3
    assert two["cpu_all_s"] >= sum(two["cpu_s"])  # both processes' CPU seconds


@pytest.mark.slow
def test_bench_data_parallel_writes_the_section_the_readme_table_and_prints_it(
    names_path, tmp_path, monkeypatch, capsys
):
    """The command `make readme-data-parallel` runs, as written there, at one small width."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    _, argv = makefile_command("readme-data-parallel", [])
    assert argv[-4:] == ["--record", "microgpt/tools/record.json", "--update-readme", "README.md"]
    (tmp_path / "microgpt" / "tools").mkdir(parents=True)  # the repository's layout
    shutil.copy(ROOT_RECORD, tmp_path / "microgpt" / "tools" / "record.json")
    stages_before = json.loads(ROOT_RECORD.read_text())["stages"]
    (tmp_path / "README.md").write_text(README_TEXT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROGPT_DATA", str(names_path))
    monkeypatch.setattr(bench, "DP_WIDTHS", {16: (GPTConfig(), 2)})
    argv[argv.index("--repeat") + 1] = "2"
    assert bench.main(argv) == 0
    record = report.read_record(tmp_path / "microgpt" / "tools" / "record.json")
    assert record["stages"] == stages_before  # the stages' figures stay
    section = record["data_parallel"]
    assert section["command"] == "python -m microgpt bench " + " ".join(argv)
    assert [(r["width"], r["processes"], r["threads"]) for r in section["rows"]] == [
        (16, 1, 1),
        (16, 2, 1),
    ]
    assert all(
        len(r["tokens_per_s_rounds"]) == 2 and r["tokens_per_s"] > 0 for r in section["rows"]
    )
    assert section["rows"][0]["speedup_vs_one"] == 1.0
    table = report.render_data_parallel(section)
    readme = (tmp_path / "README.md").read_text()
    assert report.table_in(readme, "README.md", report.DP_MARKERS) == table
    assert readme.replace(table, "") == README_TEXT.replace("old\n", "")
    assert capsys.readouterr().out == table
