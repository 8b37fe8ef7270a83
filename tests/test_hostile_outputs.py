"""Files and streams the commands write: what the user protected stays protected.

A write-protected file is refused up front (exit 2), as a shell's `>` would refuse it; a
replaced file keeps its owner and group; an output that is the command's own stdout or
stderr is refused before any work; a command started with stdout or stderr closed, or
with a full stdout, ends in one line (or, with stderr closed, in its exit code alone);
the machine's limits (full temporary folder, too few file descriptors, a small stack)
are named as such. Each hostile input is one row of HOSTILE_TABLE (see `helpers.record`).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import NAMES, ROOT, assert_one_line, cli_env, leftovers, record, run_cli

from microgpt import checkpoint, files

RECORD = ROOT / "microgpt" / "tools" / "record.json"
TRAIN = ["--steps", "2", "--samples", "1", "--stage", "flat"]
BENCH = ["bench", "--stages", "flat", "--steps", "1", "--repeat", "1", "--samples", "1"]
OTHER_UID = 54321  # a user this machine does not have: a stranger's files


def shell(command, cwd, env, timeout=120):
    """`command` through bash (redirections as a user types them)."""
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


MICROGPT = f"{sys.executable} -m microgpt"


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text(NAMES)
    return path


def protected(path, text="kept\n"):
    path.write_text(text)
    path.chmod(0o444)
    return path


# ---------------------------------------------------------------------------------------
# class 1: a write-protected file, or another user's, is never replaced


WRITERS = {  # how each output is named: (args, env) for a target path
    "--save": lambda p: ([*TRAIN, "--save", p], {}),
    "MICROGPT_CPU_PROFILE": lambda p: (TRAIN, {"MICROGPT_CPU_PROFILE": p}),
    "MICROGPT_MEM_PROFILE": lambda p: (TRAIN, {"MICROGPT_MEM_PROFILE": p}),
    "--record": lambda p: ([*BENCH, "--record", p], {}),
    "--json": lambda p: ([*BENCH, "--json", p], {}),
    "--markdown": lambda p: ([*BENCH, "--markdown", p], {}),
    "--update-readme": lambda p: ([*BENCH, "--update-readme", p], {}),
    "--plot": lambda p: ([*BENCH, "--plot", p + ".png"], {}),
    "--from-record --markdown": lambda p: (
        ["bench", "--from-record", str(RECORD), "--markdown", p],
        {},
    ),
}


@pytest.mark.parametrize("flag", WRITERS)
def test_write_protected_outputs_are_refused_up_front(tmp_path, names, flag):
    target = tmp_path / "out"
    path = str(target) + (".png" if flag == "--plot" else "")
    protected(Path(path))
    args, env = WRITERS[flag](str(target))
    result = run_cli(args, tmp_path, cli_env(tmp_path, names, **env))
    assert_one_line(result, 2, flag.split()[-1], "write-protected", what=f"{flag} over mode 0444")
    assert result.stdout == "" and "round" not in result.stderr  # refused before the work
    assert Path(path).read_text() == "kept\n" and Path(path).stat().st_mode & 0o777 == 0o444
    assert leftovers(tmp_path) == []


def test_write_protected_file_through_a_symlink_is_refused(tmp_path, names):
    protected(tmp_path / "real.json")
    (tmp_path / "link.json").symlink_to("real.json")
    result = run_cli([*TRAIN, "--save", "link.json"], tmp_path, cli_env(tmp_path, names))
    assert_one_line(result, 2, "--save: link.json", "write-protected")
    assert (tmp_path / "real.json").read_text() == "kept\n"


def test_write_atomic_leaves_a_protected_file_alone(tmp_path):
    target = protected(tmp_path / "report.md")
    with pytest.raises(files.NotReplaceable, match="write-protected"):
        files.write_atomic(target, b"new")
    assert target.read_text() == "kept\n" and leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_root_replacing_another_users_file_keeps_its_owner_group_and_mode(tmp_path, names):
    target = tmp_path / "user.json"
    target.write_text("theirs")
    os.chown(target, OTHER_UID, OTHER_UID + 1)
    target.chmod(0o640)
    result = run_cli([*TRAIN, "--save", "user.json"], tmp_path, cli_env(tmp_path, names))
    assert result.returncode == 0, result.stderr
    st = target.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (OTHER_UID, OTHER_UID + 1, 0o640)
    assert checkpoint.load(target)[1]  # and it is the new checkpoint


def as_other_user(tmp_path, script, *args):
    """`script` run by the system's python3 as the user OTHER_UID (no home, not in passwd),
    with this checkout's package: the venv's interpreter may sit where only root may go."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python is None:
        pytest.skip("running as another user needs root, setpriv and /usr/bin/python3")
    ok = subprocess.run(
        ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", "true"],
        capture_output=True,
    )
    if ok.returncode:
        pytest.skip(f"setpriv cannot switch users here: {ok.stderr.decode().strip()}")
    for folder in (tmp_path, *tmp_path.parents):
        if folder.stat().st_mode & 0o001 == 0:
            pytest.skip(f"{folder} is closed to other users")
    probe = subprocess.run(
        ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"]
        + [python, "-c", "import microgpt"],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )
    if probe.returncode:
        pytest.skip(f"another user cannot import this checkout: {probe.stderr.decode()[-200:]}")
    return subprocess.run(
        ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups"]
        + [python, "-c", script, *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def open_folder():
    """A new folder in /tmp that every user may enter (pytest's tmp_path is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="microgpt-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_user_never_replaces_a_file_they_do_not_own(open_folder, names):
    folder = open_folder / "shared"
    folder.mkdir()
    folder.chmod(0o777)  # they may make files here, yet root's file stays root's
    (folder / "names.txt").write_text(names.read_text())
    (folder / "root.json").write_text("root's")
    (folder / "root.json").chmod(0o666)
    run = "import sys; from microgpt.tools import cli; sys.argv[0] = 'microgpt'; cli.run()"
    result = as_other_user(
        folder, run, "--data", "names.txt", *TRAIN, "--save", str(folder / "root.json")
    )
    assert_one_line(result, 2, "--save", "belongs to another user", what="--save root's file")
    st = (folder / "root.json").stat()
    assert (folder / "root.json").read_text() == "root's" and (st.st_uid, st.st_gid) == (0, 0)
    result = as_other_user(
        folder, run, "--data", "names.txt", *TRAIN, "--save", str(folder / "mine.json")
    )
    assert result.returncode == 0, result.stderr
    assert (folder / "mine.json").stat().st_uid == OTHER_UID
    assert leftovers(folder) == []


# ---------------------------------------------------------------------------------------
# class 2: an output that is the command's own stdout or stderr


STREAM_CASES = {
    "--save /dev/stdout > run.log": f"{MICROGPT} {' '.join(TRAIN)} --save /dev/stdout > run.log",
    "--save run.log > run.log": f"{MICROGPT} {' '.join(TRAIN)} --save run.log > run.log",
    "--save err.log 2> err.log": f"{MICROGPT} {' '.join(TRAIN)} --save err.log 2> err.log",
    "--save hard link of stdout": f"ln -f run.log hard.log; {MICROGPT} {' '.join(TRAIN)} "
    "--save hard.log >> run.log",
    "--save symlink to stdout": f"ln -sf run.log soft.log; {MICROGPT} {' '.join(TRAIN)} "
    "--save soft.log >> run.log",
    "MICROGPT_CPU_PROFILE=/dev/stdout > r.log": f"MICROGPT_CPU_PROFILE=/dev/stdout {MICROGPT} "
    f"{' '.join(TRAIN)} > run.log",
    "MICROGPT_MEM_PROFILE=/dev/stderr 2> run.log": f"MICROGPT_MEM_PROFILE=/dev/stderr {MICROGPT} "
    f"{' '.join(TRAIN)} 2> run.log",
    "bench --json /dev/stdout > run.log": f"{MICROGPT} {' '.join(BENCH)} --json /dev/stdout "
    "> run.log",
    "bench --from-record --markdown run.log > run.log": f"{MICROGPT} bench --from-record "
    f"{RECORD} --markdown run.log > run.log",
}


@pytest.mark.parametrize("what", STREAM_CASES)
def test_an_output_that_is_stdout_or_stderr_is_refused_before_the_work(tmp_path, names, what):
    (tmp_path / "run.log").write_text("earlier log\n")
    result = shell(STREAM_CASES[what], tmp_path, cli_env(tmp_path, names))
    err = result.stderr
    if "2>" in STREAM_CASES[what]:  # the one line went to the file that is stderr
        assert result.returncode == 2 and err == ""
        err = (tmp_path / ("err.log" if "err.log" in what else "run.log")).read_text()
    record(what, result.returncode, err)
    assert result.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "which it would replace; give another file" in err
    assert "standard output" in err or "standard error" in err
    log = (tmp_path / "run.log").read_text()
    assert "checkpoint" not in log and "step" not in log and "round" not in log
    if ">>" in STREAM_CASES[what]:  # appended to, never replaced
        assert log == "earlier log\n"
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------
# class 9: stdout or stderr closed, or full


CLOSED_STDOUT = {
    "train >&-": [*TRAIN],
    "stages >&-": ["stages"],
    "sample >&-": ["sample", "--load", "ck.json", "--samples", "2"],
    "bench --from-record >&-": ["bench", "--from-record", str(RECORD)],
    "--help >&-": ["--help"],
    "bench --help >&-": ["bench", "--help"],
}


@pytest.fixture
def trained(tmp_path, names):
    result = run_cli([*TRAIN, "--save", "ck.json"], tmp_path, cli_env(tmp_path, names))
    assert result.returncode == 0, result.stderr
    return tmp_path / "ck.json"


def closed(fd):
    """A preexec_fn that closes descriptor `fd` in the child, as `>&-` does."""
    return lambda: os.close(fd)


@pytest.mark.parametrize("what", CLOSED_STDOUT)
def test_closed_stdout_is_one_line_exit_1(tmp_path, names, trained, what):
    result = run_cli(CLOSED_STDOUT[what], tmp_path, cli_env(tmp_path, names), preexec_fn=closed(1))
    assert_one_line(result, 1, "standard output cannot be written", what=what)


def test_closed_stdout_still_saves_the_checkpoint(tmp_path, names):
    args = [*TRAIN, "--save", "kept.json"]
    result = run_cli(args, tmp_path, cli_env(tmp_path, names), preexec_fn=closed(1))
    assert_one_line(result, 1, "standard output cannot be written", what="train --save >&-")
    assert checkpoint.load(tmp_path / "kept.json")[1]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "what, args, code",
    [
        ("bad flag 2>&-", ["--steps", "x"], 2),
        ("missing data 2>&-", ["--data", "gone.txt"], 1),
        ("train 2>&-", TRAIN, 0),
    ],
)
def test_closed_stderr_never_sends_errors_to_stdout(tmp_path, names, what, args, code):
    result = run_cli(args, tmp_path, cli_env(tmp_path, names), preexec_fn=closed(2))
    record(what, result.returncode, "(stderr closed)")
    assert result.returncode == code
    assert "error" not in result.stdout and "Traceback" not in result.stdout


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize(
    "what, command",
    [
        ("--help > /dev/full", "--help"),
        ("bench --help > /dev/full", "bench --help"),
        ("stages > /dev/full", "stages"),
        ("bench --from-record > /dev/full", f"bench --from-record {RECORD}"),
    ],
)
def test_help_and_lists_to_a_full_stdout_fail(tmp_path, names, what, command):
    result = shell(f"{MICROGPT} {command} > /dev/full", tmp_path, cli_env(tmp_path, names))
    assert_one_line(result, 1, "standard output cannot be written", what=what)


SCRIPTS = ["lite/build_site.py", "lite/serve.py", "book/run_notebooks.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_help_to_a_full_closed_or_early_closed_stdout(tmp_path, script):
    python = f"{sys.executable} {ROOT / script}"
    for what, command, code in [
        ("> /dev/full", f"{python} --help > /dev/full", 1),
        (">&-", f"{python} --help >&-", 1),
        ("| head -c0", f"{python} --help | head -c0; exit ${{PIPESTATUS[0]}}", 0),
    ]:
        result = shell(command, tmp_path, cli_env(tmp_path))
        if code:
            assert_one_line(
                result,
                code,
                f"{script}: error: standard output cannot be written",
                what=f"{script} --help {what}",
            )
        else:
            record(f"{script} --help {what}", result.returncode, result.stderr)
            assert result.returncode == 0 and result.stderr == "", result.stderr


def test_run_notebooks_help_prints_usage_and_checks_its_paths(tmp_path):
    script = [sys.executable, str(ROOT / "book" / "run_notebooks.py")]
    shown = subprocess.run([*script, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.startswith("usage: book/run_notebooks.py") and "NOTEBOOK" in shown.stdout
    for arg, fragment in [("gone.ipynb", "no such notebook"), ("README.md", "not a notebook")]:
        result = subprocess.run(
            [*script, arg], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert_one_line(result, 2, fragment, what=f"book/run_notebooks.py {arg}")
        assert result.stdout == ""


# ---------------------------------------------------------------------------------------
# class 11: the machine's limits, named


def test_full_temporary_folder_in_bench_names_the_cause(tmp_path, full_disk):
    names = tmp_path / "many.txt"  # more than the 16 KiB the temporary folder holds
    names.write_text(
        "".join(f"name{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}\n" for i in range(4000))
    )
    env = cli_env(tmp_path, names, TMPDIR=str(full_disk))
    result = run_cli(BENCH, tmp_path, env)
    lines = [x for x in result.stderr.splitlines() if not x.startswith(("round ", "note:"))]
    record("bench with TMPDIR full", result.returncode, "\n".join(lines))
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "no space left on the device" in lines[0] and "TMPDIR" in lines[0]
    assert "fails to run" not in result.stderr and list(full_disk.iterdir()) == []


@pytest.mark.parametrize(
    "what, args",
    [("bench", BENCH), ("train --save", [*TRAIN, "--save", "ck.json"])],
)
def test_too_few_file_descriptors_is_named(tmp_path, names, what, args):
    command = f"ulimit -n 8; exec {MICROGPT} {' '.join(args)}"
    result = shell(command, tmp_path, cli_env(tmp_path, names))
    lines = [x for x in result.stderr.splitlines() if not x.startswith(("round ", "note:"))]
    record(f"{what} under ulimit -n 8", result.returncode, "\n".join(lines))
    if result.returncode == 0:  # it needed no more than 8 here: nothing to name
        assert lines == [], result.stderr
        return
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "too many open files" in lines[0] and "ulimit -n" in lines[0]
    assert "Traceback" not in result.stderr and "fails to run" not in result.stderr


# ---------------------------------------------------------------------------------------
# classes 14 and 15: other outputs and inputs


def test_a_long_but_legal_save_name_is_written(tmp_path, names):
    name = "c" * 250 + ".json"  # 255 bytes, the most a name may have
    result = run_cli([*TRAIN, "--save", name], tmp_path, cli_env(tmp_path, names))
    assert result.returncode == 0, result.stderr
    assert checkpoint.load(tmp_path / name)[1]
    assert leftovers(tmp_path) == []


def test_a_symlink_loop_is_refused_before_training(tmp_path, names):
    (tmp_path / "a.json").symlink_to("b.json")
    (tmp_path / "b.json").symlink_to("a.json")
    result = run_cli([*TRAIN, "--save", "a.json"], tmp_path, cli_env(tmp_path, names))
    assert_one_line(result, 2, "--save: a.json", "Too many levels of symbolic links")
    assert result.stdout == ""


def test_a_bad_profile_variable_does_not_stop_commands_that_profile_nothing(tmp_path, names):
    env = cli_env(tmp_path, names, MICROGPT_CPU_PROFILE=str(tmp_path / "no" / "dir" / "x"))
    result = run_cli(["stages"], tmp_path, env)
    assert result.returncode == 0 and "flat" in result.stdout and result.stderr == ""


@pytest.mark.parametrize(
    "suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF"), (".jpg", b"\xff\xd8")]
)
def test_plot_writes_the_format_its_name_asks_for(tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    chart = tmp_path / f"chart{suffix}"
    args = ["bench", "--from-record", str(RECORD), "--plot", str(chart)]
    result = run_cli(args, tmp_path, cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert chart.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["chart.txt", "chart", "chart.gif"])
def test_plot_with_a_suffix_it_cannot_write_is_refused(tmp_path, name):
    args = ["bench", "--from-record", str(RECORD), "--plot", name]
    result = run_cli(args, tmp_path, cli_env(tmp_path))
    assert_one_line(result, 2, "--plot", "format comes from the name's suffix: .png, .svg")
    assert not (tmp_path / name).exists()


def test_make_from_another_folder_says_where_to_run_it(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    result = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(result, 2, f"make -C {ROOT} run", what="make -f path/to/Makefile run")
    assert list(tmp_path.iterdir()) == []


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "what, args, fragment",
    [
        ("sample --load (100,000 brackets)", ["sample", "--load", "deep.json"], "not a JSON"),
        ("bench --from-record (100,000 brackets)", ["bench", "--from-record", "deep.json"], "JSON"),
    ],
)
def test_deeply_nested_json_is_refused_on_a_small_stack(tmp_path, what, args, fragment):
    (tmp_path / "deep.json").write_text(DEEP)
    command = f"ulimit -s 128; exec {MICROGPT} {' '.join(args)}"
    result = shell(command, tmp_path, cli_env(tmp_path))
    assert_one_line(result, 1, fragment, what=f"{what} under ulimit -s 128")


def test_json_nesting_is_bounded_but_brackets_in_strings_are_text():
    depth = files.MAX_JSON_DEPTH
    assert files.parse_json("[" * depth + "]" * depth) is not None
    with pytest.raises(ValueError, match="nested more than"):
        files.parse_json("[" * (depth + 1) + "]" * (depth + 1))
    text = json.dumps({"names": ["[" * 500, '{\\"' * 100], "deep": [[[1]]]})
    assert files.parse_json(text) == json.loads(text)
