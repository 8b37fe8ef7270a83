"""`python -m microgpt bench --scale`: the scale section of the record, its README table,
its flags and their errors (never the timings themselves, which are the machine's).

The measuring runs on a small grid (two shapes, batches of 1 and 4) so that a test costs
seconds; the grid of record is the registry's stages over `timing.SCALE_SHAPES`.
"""

import contextlib
import io
import json
import shutil
import types

import pytest
from helpers import ROOT, load_or_skip
from test_bench import bench_command, makefile_command

from microgpt import stages
from microgpt.stages import _arrays
from microgpt.tools import bench, report, timing

README_TEXT = (
    f"# Title\n\n{report.README_START}\nold table\n{report.README_END}\n\nbetween\n\n"
    f"{report.SCALE_START}\nold scale\n{report.SCALE_END}\n\nafter\n"
)
SMALL_GRID = {"shapes": ((16, 1), (32, 2)), "batches": (1, 4)}


def bench_main(argv):
    """(exit code, stdout, stderr) of `python -m microgpt bench ARGV`, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = bench.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def scaled(names_path, tmp_path_factory):
    """A stage record, then its scale section added as a user types it (small grid)."""
    load_or_skip("tensor")
    tmp = tmp_path_factory.mktemp("scale")
    readme, rec = tmp / "README.md", tmp / "rec.json"
    readme.write_text(README_TEXT)
    data = ["--data", str(names_path)]
    stage_args = ["--stages", "flat", "--steps", "1", "--repeat", "1", "--samples", "0", *data]
    code, _, err = bench_main([*stage_args, "--record", str(rec), "--update-readme", str(readme)])
    assert code == 0, err
    stage_record = report.read_record(rec)
    stage_readme = readme.read_text()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "scale_cells", lambda names: timing.scale_cells(names, **SMALL_GRID))
        argv = ["--scale", "--stages", "tensor", "--repeat", "2", *data]
        code, out, err = bench_main([*argv, "--record", str(rec), "--update-readme", str(readme)])
    assert code == 0, err
    return types.SimpleNamespace(
        tmp=tmp, rec=rec, readme=readme, out=out, err=err, stage_args=stage_args,
        stage_record=stage_record, stage_readme=stage_readme,
    )  # fmt: skip


def test_scale_section_joins_the_record_and_keeps_the_stage_table(scaled):
    record = report.read_record(scaled.rec)
    assert record["record_format"] == report.RECORD_FORMAT == 2
    assert record["stages"] == scaled.stage_record["stages"]
    cells = record["scale"]["cells"]
    grid = [(c["n_layer"], c["n_embd"], c["batch_size"], c["blas_threads"]) for c in cells]
    assert grid == [
        (1, 16, 1, 1), (1, 16, 1, 2), (1, 16, 4, 1), (1, 16, 4, 2),
        (2, 32, 1, 1), (2, 32, 1, 2), (2, 32, 4, 1), (2, 32, 4, 2),
    ]  # fmt: skip
    for cell in cells:
        assert cell["stage"] == "tensor" and len(cell["rounds"]) == 2
        assert cell["tokens_per_s"] > 0 and cell["ms_per_step"] > 0 and cell["peak_mib"] > 0
        # tokens/s is the positions per second of the steps timed: about 7 per name; a
        # round's own figures agree (the medians may come from different rounds)
        for ms, _, tokens_per_s in cell["rounds"]:
            per_step = tokens_per_s * ms / 1000
            assert 2 * cell["batch_size"] < per_step < 16 * cell["batch_size"]
        assert cell["estimate_mib"] > 0
    assert record["scale"]["command"].startswith("python -m microgpt bench --scale")


def test_scale_table_goes_between_its_own_markers(scaled):
    record = report.read_record(scaled.rec)
    text = scaled.readme.read_text()
    table = report.table_in(text, "README.md", (report.SCALE_START, report.SCALE_END))
    assert table == report.render_scale_markdown(record["scale"])
    assert "| `tensor` | 2 x 32 | 4 | 2 |" in table and "tokens/s" in table.splitlines()[0]
    # the stage table and the rest of the file are as they were
    assert report.table_in(text, "README.md") == report.table_in(scaled.stage_readme, "")
    assert text.replace(table, "") == scaled.stage_readme.replace("old scale\n", "")


def test_scale_prints_its_table(scaled):
    lines = scaled.out.splitlines()
    assert lines[0].split()[:4] == ["stage", "layers", "x", "width"]
    assert sum(line.startswith("tensor ") for line in lines) == 8
    assert "scale round 2/2 done" in scaled.err


def test_a_new_stage_table_keeps_the_scale_section(scaled, tmp_path):
    rec = tmp_path / "rec.json"
    rec.write_bytes(scaled.rec.read_bytes())
    code, _, err = bench_main([*scaled.stage_args, "--record", str(rec)])
    assert code == 0, err
    assert report.read_record(rec)["scale"] == report.read_record(scaled.rec)["scale"]


def test_from_record_renders_the_scale_table_again(scaled, tmp_path):
    code, out, err = bench_main(["--from-record", str(scaled.rec), "--scale"])
    assert code == 0, err
    assert out == report.render_scale_text(report.read_record(scaled.rec)["scale"])


def test_a_record_of_format_1_is_still_read(scaled, tmp_path):
    old = json.loads(scaled.rec.read_text())
    del old["scale"]
    old["record_format"] = 1
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert report.read_record(tmp_path / "old.json")["stages"] == old["stages"]
    code, _, err = bench_main(["--from-record", str(tmp_path / "old.json"), "--scale"])
    assert code == 1
    assert err == (
        "microgpt bench: error: the record has no scale section; make one with: make scale-table\n"
    )


def test_a_damaged_scale_section_is_refused(scaled, tmp_path):
    record = json.loads(scaled.rec.read_text())
    del record["scale"]["cells"][0]["tokens_per_s"]
    (tmp_path / "bad.json").write_text(json.dumps(record))
    code, _, err = bench_main(["--from-record", str(tmp_path / "bad.json")])
    assert code == 1 and "the record has no 'scale/tensor 1x16 B1, 1 BLAS/tokens_per_s'" in err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--scale", "--steps", "3"], "--scale times each cell for a fixed time; --steps"),
        (["--scale", "--samples", "3"], "--samples does not go with it"),
        (["--scale", "--plot", "x.png"], "--plot does not go with it"),
        (["--scale", "--stages", "flat"], "that take larger shapes (tensor, jit, torch), not flat"),
        (["--scale", "--record", "missing.json"], "--scale adds its section to an existing record"),
    ],
)
def test_scale_flag_mistakes_exit_2_with_one_line(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = bench_main(args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err, err


def test_update_readme_without_scale_markers_is_refused_before_measuring(tmp_path, scaled):
    readme = tmp_path / "README.md"
    readme.write_text(f"{report.README_START}\n{report.README_END}\n")
    code, _, err = bench_main(
        ["--scale", "--record", str(scaled.rec), "--update-readme", str(readme)]
    )
    assert code == 2 and "no <!-- scale:start --> ... <!-- scale:end --> markers" in err


def test_the_grid_is_the_registrys():
    """A stage joins the scale benchmark by its registry entry alone: `scales`, and
    `batched` and `blas` for its batch and thread cells."""
    names = [s.name for s in stages.STAGES if s.scales]
    assert names[:2] == ["tensor", "jit"]
    cells = timing.scale_cells(names)
    for stage in (stages.BY_NAME[name] for name in names):
        own = [c for c in cells if c.stage == stage.name]
        batches = {c.batch_size for c in own}
        assert batches == ({1, 32} if stage.batched else {1})
        assert {c.blas_threads for c in own} == ({1, 2} if stage.blas else {None})
        assert {(c.n_embd, c.n_layer) for c in own} == {(16, 1), (64, 2), (256, 2), (512, 2)}


def test_readme_scale_table_is_the_rendering_of_the_committed_record():
    """The README's second table and microgpt/tools/record.json cannot disagree."""
    record = report.read_record(ROOT / "microgpt" / "tools" / "record.json")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = report.table_in(readme, "README.md", (report.SCALE_START, report.SCALE_END))
    assert table == report.render_scale_markdown(record["scale"])


def test_makefile_scale_table_target_writes_record_and_readme():
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile.split("\nscale-table:", 1)[1].split("\n\n", 1)[0]
    assert "-m microgpt bench --scale" in rule
    assert "--record microgpt/tools/record.json --update-readme README.md" in rule


# ---------------------------------------------------------------------------------------
# BLAS threads, chosen by size


def test_small_products_keep_one_blas_thread(monkeypatch):
    monkeypatch.setattr(_arrays, "cores", lambda: 8)
    monkeypatch.setattr(_arrays.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert _arrays.threads_for(15, 16) == 1  # the default run
    assert _arrays.threads_for(32 * 15, 64) == 1
    assert _arrays.threads_for(32 * 15, 512) == 8  # 32 names through a 512-wide MLP


def test_big_products_take_only_the_cores_others_leave(monkeypatch):
    monkeypatch.setattr(_arrays, "cores", lambda: 8)
    monkeypatch.setattr(_arrays.os, "getloadavg", lambda: (5.2, 0.0, 0.0))
    assert _arrays.threads_for(32 * 15, 512) == 4  # ours and three idle
    monkeypatch.setattr(_arrays.os, "getloadavg", lambda: (12.0, 0.0, 0.0))
    assert _arrays.threads_for(32 * 15, 512) == 1


def test_blas_threads_are_set_through_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    load_or_skip("tensor")
    if not _arrays.blas_threads.settable:
        pytest.skip("the BLAS thread variables are set by the user here")

    def blas_counts():
        info = threadpoolctl.threadpool_info()
        return {lib["num_threads"] for lib in info if lib["user_api"] == "blas"}

    blas = _arrays.blas_threads
    try:
        blas.use(2)
        assert blas_counts() == {2}
        with timing.blas_held_at(1):
            blas.use(2)  # a step's own choice gives way to the benchmark's
            assert blas_counts() == {1}
    finally:
        blas.use(1)
    assert blas_counts() == {1}


@pytest.mark.slow
def test_make_scale_table_as_typed_adds_the_section_and_the_readme_table(names_path, tmp_path):
    """`make scale-table` (one stage, one round: the grid of record, a minute or so) in a
    copy of the repository's record and README: the section joins the record, the stage
    table stays, the README's second table is its rendering and nothing else changes."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    narrower = ["--stages", "tensor", "--repeat", "1"]
    python, args = makefile_command("scale-table", ["ARGS=" + " ".join(narrower)])
    assert args[:1] == ["--scale"] and args[-len(narrower) :] == narrower
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    (tmp_path / "microgpt" / "tools").mkdir(parents=True)
    record_path = tmp_path / "microgpt" / "tools" / "record.json"
    record_path.write_bytes((ROOT / "microgpt" / "tools" / "record.json").read_bytes())
    before = report.read_record(record_path)
    done = bench_command(args, tmp_path, names_path, python)
    assert done.returncode == 0, done.stderr
    record = report.read_record(record_path)
    assert record["stages"] == before["stages"]
    cells = record["scale"]["cells"]
    assert {c["stage"] for c in cells} == {"tensor"}
    shapes = {(c["n_embd"], c["n_layer"]) for c in cells}
    assert shapes == set(timing.SCALE_SHAPES)
    assert {(c["batch_size"], c["blas_threads"]) for c in cells} == {
        (1, 1),
        (1, 2),
        (32, 1),
        (32, 2),
    }
    assert all(c["tokens_per_s"] > 0 and len(c["rounds"]) == 1 for c in cells)
    updated = (tmp_path / "README.md").read_text(encoding="utf-8")
    table = report.table_in(updated, "README.md", (report.SCALE_START, report.SCALE_END))
    assert table == report.render_scale_markdown(record["scale"])
    old = report.table_in(readme, "README.md", (report.SCALE_START, report.SCALE_END))
    assert updated.replace(table, "", 1) == readme.replace(old, "", 1)


def test_every_measurement_waits_untimed_for_the_last_one_s_threads(monkeypatch):
    events = []
    monkeypatch.setattr(timing.time, "sleep", lambda s: events.append(("sleep", s)))
    timing.interleave({"a": "a", "b": "b"}, 2, lambda s: events.append(s), settle_s=0.3)
    wait = ("sleep", 0.3)
    assert events == [wait, "a", wait, "b", wait, "b", wait, "a"]


def test_the_scale_note_says_so_only_where_the_record_waited(scaled):
    section = report.read_record(scaled.rec)["scale"]
    assert section["settle_s"] == timing.SETTLE_S
    wait = f"after {timing.SETTLE_S:g} s untimed, for the last cell's BLAS threads to sleep"
    assert wait in report.scale_method_note(section)
    del section["settle_s"]  # a record from before the wait
    assert "untimed" not in report.scale_method_note(section)


def test_without_a_wait_nothing_sleeps(monkeypatch):
    """The chapters interleave in the browser, where Pyodide's time.sleep raises
    ("WebAssembly stack switching not supported") unless the engine has stack switching."""

    def no_sleep(seconds):
        raise RuntimeError("WebAssembly stack switching not supported in this JavaScript runtime")

    monkeypatch.setattr(timing.time, "sleep", no_sleep)
    assert timing.interleave({"a": "a"}, 2, lambda s: s * 2) == {"a": ["aa", "aa"]}
