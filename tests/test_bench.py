"""`python -m microgpt bench`: the files it writes and the flags it refuses (never timings)."""

import contextlib
import gc
import io
import json

import pytest

from microgpt import stages
from microgpt.tools import bench

KEYS = {
    "name",
    "ms_per_step",
    "speedup_vs_baseline",
    "speedup_vs_previous",
    "sample_ms_per_name",
    "peak_mib",
    "est_full_run_s",
    "cpu_ms_per_step",
}


def tiny_stages():
    """The baseline and the fastest stage in the chain: two cheap, different stages."""
    return ["baseline", bench.default_stages()[-1]]


@pytest.fixture(scope="module")
def bench_run(names_path, tmp_path_factory):
    """One tiny benchmark writing every output, with what it printed."""
    tmp = tmp_path_factory.mktemp("bench")
    readme = tmp / "README.md"
    readme.write_text(
        f"# Title\n\nbefore\n{bench.README_START}\nold table\n{bench.README_END}\nafter\n"
    )
    names = tiny_stages()
    argv = ["--stages", ",".join(reversed(names)), "--steps", "2", "--repeat", "1"]
    argv += ["--samples", "2", "--data", str(names_path), "--json", str(tmp / "b.json")]
    argv += ["--markdown", str(tmp / "b.md"), "--update-readme", str(readme)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = bench.main(argv)
    return code, names, tmp, out.getvalue()


def test_json_has_every_stage_in_pass_order(bench_run):
    code, names, tmp, _ = bench_run
    assert code == 0
    report = json.loads((tmp / "b.json").read_text())
    assert [row["name"] for row in report["stages"]] == names
    for key in ("python", "machine", "steps", "repeat", "date"):
        assert key in report
    assert report["steps"] == 2 and report["repeat"] == 1
    for row in report["stages"]:
        assert KEYS <= row.keys()
        assert row["ms_per_step"] > 0 and row["sample_ms_per_name"] > 0
        assert row["peak_mib"] > 5  # a Python process is never smaller
        assert row["est_full_run_s"] > row["ms_per_step"] / 1000
    first = report["stages"][0]
    assert first["speedup_vs_baseline"] == 1.0 and first["speedup_vs_previous"] is None
    for prev, row in zip(report["stages"], report["stages"][1:]):
        assert row["speedup_vs_previous"] == pytest.approx(prev["ms_per_step"] / row["ms_per_step"])


def test_markdown_table_and_readme(bench_run):
    _, names, tmp, printed = bench_run
    markdown = (tmp / "b.md").read_text()
    lines = markdown.splitlines()
    assert lines[0].startswith("| stage | ms/step |")
    assert set(lines[1]) <= set("|:-")
    rows = lines[2 : 2 + len(names)]
    assert [row.split("|")[1].strip() for row in rows] == [f"`{n}`" for n in names]
    assert all(row.count("|") == lines[0].count("|") for row in rows)
    assert "python -m microgpt bench --stages" in markdown
    readme = (tmp / "README.md").read_text()
    assert readme.startswith("# Title\n\nbefore\n") and readme.endswith("after\n")
    assert "old table" not in readme and markdown in readme
    for name in names:
        assert name in printed


def test_readme_table_is_replaced_not_appended():
    text = f"a\n{bench.README_START}\nx\n{bench.README_END}\nb\n"
    once = bench.replace_between_markers(text, "| t |\n", "README.md")
    assert bench.replace_between_markers(once, "| t |\n", "README.md") == once
    with pytest.raises(bench.BenchError, match="markers"):
        bench.replace_between_markers("no markers\n", "| t |\n", "README.md")


def test_speedups_and_estimates_from_medians(names_docs):
    slow = bench.StageResult("baseline", [100.0, 300.0, 200.0], [90.0, 250.0, 190.0])
    slow.sample_ms_rounds, slow.peak_mib = [10.0, 10.0, 10.0], 50.0
    fast = bench.StageResult("flat", [2.0, 1.0, 9.0], [2.0, 1.0, 8.0], [1.0, 2.0, 3.0], 20.0)
    rows = bench.summarize([slow, fast], names_docs, 30)
    assert [r["ms_per_step"] for r in rows] == [200.0, 2.0]
    assert [r["cpu_ms_per_step"] for r in rows] == [190.0, 2.0]
    assert rows[1]["speedup_vs_baseline"] == rows[1]["speedup_vs_previous"] == 100.0
    scale = bench.full_run_scale(names_docs, 30)
    assert 0.9 < scale < 1.1  # the first 30 shuffled names are about as long as the first 1000
    assert rows[1]["est_full_run_s"] == pytest.approx(2.0 * scale + 2.0 * 20 / 1000)


def test_gc_tuning_of_one_stage_does_not_leak_into_the_next():
    before = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    with bench.isolated_gc():
        gc.freeze()
        gc.set_threshold(100_000, 50, 50)
        gc.disable()
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before


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
        (["--json", str(tmp_path)], "is a directory"),
        (["--update-readme", str(tmp_path / "nope.md")], "no such file"),
        (["--update-readme", str(no_markers)], "markers"),
    ]:
        with pytest.raises(SystemExit) as exc:
            bench.main(["--stages", "baseline", *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and problem in err, err


def test_plot_without_matplotlib_is_one_line(tmp_path, capsys, monkeypatch):
    real_find_spec = bench.find_spec
    monkeypatch.setattr(
        bench, "find_spec", lambda n: None if n == "matplotlib" else real_find_spec(n)
    )
    code = bench.main(["--plot", str(tmp_path / "b.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install matplotlib" in err
    assert not (tmp_path / "b.png").exists()


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    report = {
        "repeat": 1,
        "python": "CPython",
        "stages": [
            {"name": "baseline", "ms_per_step": 100.0, "speedup_vs_baseline": 1.0},
            {"name": "flat", "ms_per_step": 2.0, "speedup_vs_baseline": 50.0},
        ],
    }
    assert bench.render_plot(report).startswith(b"\x89PNG")


def test_stage_without_its_package_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(stages, "missing_requirements", lambda s: list(s.requires))
    code = bench.main(["--stages", "baseline,tensor"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install numpy" in err


def test_peak_memory_is_the_child_s_own(names_path):
    """Linux's ru_maxrss survives exec: a child of a big parent must not inherit its size."""
    ballast = bytearray(300 * 2**20)
    ballast[:: 2**12] = b"\1" * len(ballast[:: 2**12])  # touch every page: it is resident
    peak = bench.measure_peak_mib("baseline", names_path, 1, 1)
    del ballast
    assert 5 < peak < 200
