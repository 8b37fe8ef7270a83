"""Every user mistake ends cleanly: the command line as users type it.

Each test runs `python -m microgpt ...` in a fresh folder with a small names file and
checks the exit code (2 bad flag or value, 1 failure while running, 130 Ctrl-C,
0 when the reader of stdout leaves early), that an error is exactly one line on
stderr naming the problem, and that no file is half written, lost or changed in mode.

HOSTILE_TABLE=path appends one row per hostile input (input, exit code, first line of
stderr) to that file: the table of the closing note.
"""

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_one_line, cli_env, record, run_cli

from microgpt import files, stages
from microgpt.tools import cli

NAMES = "emma\nolivia\nava\nisabella\nsophia\nmia\nzoe\nliam\nnoah\noliver\n"
HAS_NUMPY = not stages.missing_requirements(stages.BY_NAME["tensor"])
needs_numpy = pytest.mark.skipif(not HAS_NUMPY, reason="stage tensor needs numpy")


@pytest.fixture
def names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text(NAMES)
    return path


def leftovers(folder):
    """Temporary files a write left behind (mkstemp's tmp* and write_atomic's .*.tmp)."""
    return [p.name for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def shell(command, cwd, env, timeout=120):
    """`command` through bash, exit status of the pipeline's first command."""
    return subprocess.run(
        ["bash", "-c", f"{command}; exit ${{PIPESTATUS[0]}}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


MICROGPT = f"{sys.executable} -m microgpt"


def mount_tmpfs(folder, options):
    """Mount a tmpfs on `folder` (root only); skips, saying why, where that is impossible."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a read-only or full file system")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"running as root, and tmpfs cannot be mounted: {done.stderr.strip()}")


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can write to: chmod for users, a read-only tmpfs for root
    (root ignores permission bits)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount_tmpfs(folder, "ro,size=64k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A 16 KiB file system (root only): a checkpoint (~80 KB) does not fit."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tiny tmpfs, which needs root")
    folder = tmp_path / "full"
    folder.mkdir()
    mount_tmpfs(folder, "size=16k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


# ---------------------------------------------------------------------------------------
# flag values: refused with one line (exit 2), or they work


BIG = "9" * 5000  # more digits than int() reads


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--temperature", "1e-310"], ["--temperature", "positive number from 1e-06"]),
        (["--temperature", "1e-300"], ["--temperature", "positive number"]),
        (["--temperature", "1e308"], ["--temperature", "to 1e+06"]),
        (["--temperature", "nan"], ["--temperature", "positive number"]),
        (["--temperature", "inf"], ["--temperature", "positive number"]),
        (["--temperature", "-inf"], ["--temperature", "expected one argument", "--flag=-value"]),
        (["--temperature=-inf"], ["--temperature", "positive number"]),
        (["--temperature", "-1e-3"], ["--temperature", "--flag=-value"]),
        (["--temperature", "-0"], ["--temperature", "positive number"]),
        (["--temperature", "0"], ["--temperature", "positive number"]),
        (["--temperature", ""], ["--temperature", "not a number"]),
        (["--temperature", "0x1p-3"], ["--temperature", "not a number"]),
        (["--steps", "0"], ["--steps", "at least 1"]),
        (["--steps", "-5"], ["--steps", "at least 1"]),
        (["--steps", "1.5"], ["--steps", "not a whole number"]),
        (["--steps", "1e3"], ["--steps", "not a whole number"]),
        (["--steps", BIG], ["--steps", "too many digits", "..."]),
        (["--samples", "-1"], ["--samples", "at least 0"]),
        (["--samples", "many"], ["--samples", "not a whole number"]),
        (["--seed", "4.2"], ["--seed", "not a whole number"]),
        (["--seed", "-" + BIG], ["--seed", "too many digits"]),
        (["--batch-size", "0"], ["--batch-size", "between 1 and 1024"]),
        (["--batch-size", "100000000"], ["--batch-size", "between 1 and 1024"]),
        (["--stage", "warp\ndrive"], ["unknown stage", "warp\\ndrive"]),
        (["--stage", "\x1b[31mred"], ["unknown stage", "\\x1b[31mred"]),
        (["--data", ""], ["--data", "is empty"]),
        (["--save", ""], ["--save", "is empty"]),
        (["--save", "   "], ["--save", "is empty"]),
        (["--bogus\nflag"], ["unrecognized arguments", "--bogus\\nflag"]),
        (["sample"], ["--load"]),
        (["sample", "--load", ""], ["--load", "is empty"]),
        (["sample", "--load", "x.json", "--temperature", "inf"], ["positive number"]),
        (["sample", "--load", "x.json", "--seed", "x"], ["--seed", "not a whole number"]),
        (["bench", "--steps", "0"], ["--steps", "between 1 and 1000"]),
        (["bench", "--steps", BIG], ["--steps", "too many digits"]),
        (["bench", "--samples", "-1"], ["--samples", "at least 0"]),
        (["bench", "--repeat", "0"], ["--repeat", "at least 1"]),
        (["bench", "--stages", "flat,warp"], ["unknown stage 'warp'"]),
        (["bench", "--data", ""], ["--data", "is empty"]),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, list) else None,
)
def test_bad_flag_values_are_one_line_exit_2(tmp_path, names, args, fragments):
    result = run_cli(args, tmp_path, cli_env(tmp_path, names))
    shown = " ".join(a if len(a) < 30 else a[:12] + f"...({len(a)} chars)" for a in args)
    assert_one_line(result, 2, *fragments, what=shown.replace("\n", "\\n"))
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--temperature", "1e-6"],
        ["--temperature", "1e6"],
        ["--temperature", "1E-6"],
        ["--seed", "-" + "9" * 100],
        ["--seed", "9" * 4000],
        ["--samples", "0"],
        ["--steps", " 3 "],
        ["--batch-size", "1024", "--steps", "1"],
    ],
    ids=lambda v: repr(v)[:40],
)
def test_extreme_but_valid_flags_work(tmp_path, names, args):
    argv = ["--steps", "3", "--samples", "3", *args]
    if "--batch-size" not in args:
        argv += ["--stage", "flat"]
    elif not HAS_NUMPY:
        pytest.skip("--batch-size needs stage tensor (numpy)")
    result = run_cli(argv, tmp_path, cli_env(tmp_path, names))
    record(" ".join(a if len(a) < 30 else a[:8] + "..." for a in args), result.returncode, "")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    samples = [line for line in result.stdout.splitlines() if line.startswith("sample")]
    wanted = int(argv[len(argv) - 1 - argv[::-1].index("--samples") + 1])  # the last wins
    assert len(samples) == wanted


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", str(10**30), "--stage", "flat"],  # would train for ever
        ["--steps", "2", "--samples", str(10**30), "--stage", "flat"],  # would sample for ever
    ],
    ids=["steps 10**30", "samples 10**30"],
)
def test_endless_runs_stream_and_stop_when_the_reader_leaves(tmp_path, names, args):
    """Huge counts are accepted: output streams (memory stays flat) and `| head` ends them."""
    result = shell(f"{MICROGPT} {' '.join(args)} | head -5", tmp_path, cli_env(tmp_path, names))
    record(f"{' '.join(args)} | head -5", result.returncode, result.stderr)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 5


@pytest.mark.parametrize("stage", ["flat", pytest.param("tensor", marks=needs_numpy)])
def test_names_a_terminal_cannot_encode_are_escaped(tmp_path, stage):
    data = tmp_path / "cjk.txt"
    data.write_text("张伟\n王芳\n李娜\n刘洋\n", encoding="utf-8")
    env = cli_env(tmp_path, data, PYTHONIOENCODING="ascii")
    result = run_cli(["--steps", "3", "--samples", "3", "--stage", stage], tmp_path, env)
    record("CJK names, PYTHONIOENCODING=ascii", result.returncode, result.stderr)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "\\u" in result.stdout  # escaped, not a UnicodeEncodeError


# ---------------------------------------------------------------------------------------
# class 1: memory bounded by the work


def cjk_names(path, letters=5000):
    """A names file using `letters` distinct CJK characters, every one of them."""
    chars = [chr(0x4E00 + i) for i in range(letters)]
    lines = [
        chars[i] + chars[(i * 7 + 1) % letters] + chars[(i * 13 + 2) % letters]
        for i in range(letters)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def peak_rss_mib(args, cwd, env):
    """(result, peak RSS in MiB) of the CLI, the child's VmHWM polled from /proc."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "microgpt", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.02)
    return proc.returncode, proc.stderr.read(), peak


@pytest.mark.parametrize("stage", [pytest.param("tensor", marks=needs_numpy), "flat"])
def test_5000_cjk_letters_train_in_modest_memory(tmp_path, stage):
    data = cjk_names(tmp_path / "cjk.txt")
    env = cli_env(tmp_path, data, OPENBLAS_NUM_THREADS="1")
    args = ["--steps", "3", "--samples", "2", "--stage", stage, "--save", "ck.json"]
    code, err, peak = peak_rss_mib(args, tmp_path, env)
    record(f"5,000 distinct CJK letters, --stage {stage} (peak {peak:.0f} MiB)", code, err)
    assert code == 0, err
    assert peak < 250, f"peak RSS {peak:.0f} MiB"
    sampled = run_cli(["sample", "--load", "ck.json", "--samples", "2"], tmp_path, env)
    assert sampled.returncode == 0, sampled.stderr


def test_huge_names_file_is_refused_unread(tmp_path):
    data = tmp_path / "huge.txt"
    with open(data, "wb") as f:
        f.truncate(2**31)  # 2 GiB, sparse: costs no disk
    result = run_cli(["--data", str(data), "--steps", "1"], tmp_path, cli_env(tmp_path))
    assert_one_line(result, 1, "larger than 16 MiB", "head -n", what="--data: a 2 GiB file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_endless_device_as_data_is_refused(tmp_path):
    result = run_cli(["--data", "/dev/zero", "--steps", "1"], tmp_path, cli_env(tmp_path))
    assert_one_line(result, 1, "/dev/zero", "larger than 16 MiB")


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("block_size", 20000, "block_size must be a whole number from 1 to 2048"),
        ("n_embd", 100000, "n_embd must be a whole number from 1 to 2048"),
        ("n_layer", 10**6, "n_layer must be a whole number from 1 to 64"),
    ],
)
def test_checkpoint_asking_for_absurd_sizes_is_refused(tmp_path, field, value, fragment):
    doc = {
        "format": "microgpt-checkpoint",
        "version": 1,
        "config": {"n_layer": 1, "n_embd": 16, "n_head": 4, "block_size": 16, "init_std": 0.08},
        "chars": ["a", "b"],
        "weights": {},
    }
    doc["config"][field] = value
    (tmp_path / "big.json").write_text(json.dumps(doc))
    result = run_cli(["sample", "--load", "big.json"], tmp_path, cli_env(tmp_path))
    assert_one_line(result, 1, "big.json", fragment, what=f"sample --load: config {field} {value}")


def test_checkpoint_over_the_parameter_limit_is_refused(tmp_path):
    doc = {
        "format": "microgpt-checkpoint",
        "version": 1,
        "config": {"n_layer": 64, "n_embd": 2048, "n_head": 4, "block_size": 2048, "init_std": 0.1},
        "chars": ["a"],
        "weights": {},
    }
    (tmp_path / "big.json").write_text(json.dumps(doc))
    result = run_cli(["sample", "--load", "big.json"], tmp_path, cli_env(tmp_path))
    assert_one_line(
        result, 1, "more than 10,000,000 parameters", what="sample --load: 3.2e9 parameters"
    )


# ---------------------------------------------------------------------------------------
# class 2: a checkpoint is never silently lost


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_save_survives_head_closing_stdout(tmp_path, names, buffered):
    env = cli_env(tmp_path, names, buffered=buffered)
    result = shell(f"{MICROGPT} --save ck.json --steps 30 | head -3", tmp_path, env)
    record("--save ck.json --steps 30 | head -3", result.returncode, result.stderr)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].startswith("num docs:")
    assert len(result.stdout.splitlines()) == 3
    doc = json.loads((tmp_path / "ck.json").read_text())
    assert doc["steps"] == 30
    sampled = run_cli(["sample", "--load", "ck.json", "--samples", "3"], tmp_path, env)
    assert sampled.returncode == 0, sampled.stderr
    assert len(sampled.stdout.splitlines()) == 3
    assert leftovers(tmp_path) == []


def test_save_on_a_full_disk_keeps_the_old_file_and_prints_the_names(tmp_path, names, full_disk):
    old = full_disk / "ck.json"
    old.write_bytes(b"the old checkpoint")
    args = ["--save", str(old), "--steps", "3", "--samples", "4", "--stage", "flat"]
    result = run_cli(args, tmp_path, cli_env(tmp_path, names))
    err = assert_one_line(
        result, 1, "--save", "could not be written", "No space left", what="--save on a full disk"
    )
    assert "unchanged" in err
    assert old.read_bytes() == b"the old checkpoint"
    assert sum(line.startswith("sample") for line in result.stdout.splitlines()) == 4
    assert leftovers(full_disk) == []


def test_failed_save_in_process(tmp_path, names, monkeypatch, capsys):
    """The same through `main`, with the write failing as a full disk does."""
    old = tmp_path / "ck.json"
    old.write_text("old")

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "write_atomic", disk_full)
    args = ["--data", str(names), "--steps", "2", "--stage", "flat", "--samples", "2"]
    assert cli.main([*args, "--save", str(old)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "No space left on device" in captured.err
    assert captured.out.count("sample ") == 2
    assert old.read_text() == "old"


# ---------------------------------------------------------------------------------------
# class 3: every output path is checked before the work starts


def bad_output_paths(tmp_path):
    """(description, path, fragment) of paths that cannot take a file."""
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / "a-file").write_text("x")
    return [
        ("a directory", str(folder), "is a directory"),
        ("a path ending in /", str(folder / "new") + "/", "is a directory"),
        ("a missing folder", str(folder / "no" / "such" / "x.out"), "does not exist"),
        ("a file as folder", str(folder / "a-file" / "x.out"), "is a file, not a folder"),
        ("/dev/null", "/dev/null", "not a regular file"),
        ("a 300-letter name", str(folder / ("n" * 300)), "File name too long"),
    ]


@pytest.mark.parametrize("flag", ["--save", "MICROGPT_CPU_PROFILE", "MICROGPT_MEM_PROFILE"])
def test_unusable_output_paths_fail_before_training(tmp_path, names, flag):
    for what, path, fragment in bad_output_paths(tmp_path):
        if flag == "--save":
            args, env = ["--save", path, "--steps", "2"], cli_env(tmp_path, names)
        else:
            args, env = ["--steps", "2"], cli_env(tmp_path, names, **{flag: path})
        start = time.monotonic()
        result = run_cli(args, tmp_path, env)
        assert_one_line(result, 2, flag, fragment, what=f"{flag} {what}")
        assert result.stdout == "" and time.monotonic() - start < 30
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("flag", ["--json", "--markdown", "--plot", "--update-readme"])
def test_unusable_bench_outputs_fail_before_measuring(tmp_path, names, flag):
    for what, path, fragment in bad_output_paths(tmp_path):
        args = ["bench", "--stages", "flat", "--steps", "1", "--repeat", "1", flag, path]
        result = run_cli(args, tmp_path, cli_env(tmp_path, names))
        assert_one_line(result, 2, flag, fragment, what=f"bench {flag} {what}")
        assert "round" not in result.stderr
    assert leftovers(tmp_path) == []


def test_read_only_folder_fails_before_training(tmp_path, names, readonly_dir):
    for args, env, flag in [
        (["--save", str(readonly_dir / "ck.json")], {}, "--save"),
        ([], {"MICROGPT_CPU_PROFILE": str(readonly_dir / "cpu.prof")}, "MICROGPT_CPU_PROFILE"),
        ([], {"MICROGPT_MEM_PROFILE": str(readonly_dir / "mem.txt")}, "MICROGPT_MEM_PROFILE"),
        (["bench", "--json", str(readonly_dir / "b.json")], {}, "--json"),
        (["bench", "--markdown", str(readonly_dir / "b.md")], {}, "--markdown"),
    ]:
        result = run_cli([*args, "--steps", "2"], tmp_path, cli_env(tmp_path, names, **env))
        assert_one_line(
            result, 2, flag, "Read-only file system", what=f"{flag} in a read-only folder"
        )
        assert result.stdout == ""
    assert list(readonly_dir.iterdir()) == []


def test_update_readme_that_is_not_text(tmp_path, names):
    readme = tmp_path / "README.md"
    readme.write_bytes(b"\xff\xfe<!-- bench:start -->\x00")
    args = ["bench", "--stages", "flat", "--update-readme", str(readme)]
    result = run_cli(args, tmp_path, cli_env(tmp_path, names))
    assert_one_line(result, 2, "--update-readme", "not UTF-8", what="bench --update-readme binary")


@pytest.mark.parametrize("variable", ["MICROGPT_CPU_PROFILE", "MICROGPT_MEM_PROFILE"])
def test_bad_data_with_a_profile_set_shows_the_data_error(tmp_path, variable):
    env = cli_env(tmp_path, **{variable: str(tmp_path / "profile.out")})
    result = run_cli(["--data", "missing.txt", "--steps", "2"], tmp_path, env)
    assert_one_line(
        result, 1, "missing.txt: no such file", "--data", what=f"bad --data, {variable} set"
    )
    assert leftovers(tmp_path) == []


def test_empty_profile_variable_means_no_profile(tmp_path, names):
    env = cli_env(tmp_path, names, MICROGPT_CPU_PROFILE="", MICROGPT_MEM_PROFILE="")
    result = run_cli(["--steps", "2", "--samples", "1", "--stage", "flat"], tmp_path, env)
    record("MICROGPT_CPU_PROFILE='' MICROGPT_MEM_PROFILE=''", result.returncode, result.stderr)
    assert result.returncode == 0 and result.stderr == ""


def test_profile_write_failing_at_the_end_is_one_line(tmp_path, names, monkeypatch, capsys):
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setenv("MICROGPT_CPU_PROFILE", str(tmp_path / "cpu.prof"))
    monkeypatch.setattr(files, "write_atomic", disk_full)
    args = ["--data", str(names), "--steps", "2", "--stage", "flat", "--samples", "1"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MICROGPT_CPU_PROFILE" in err and "No space left" in err
    # and with bad data as well, the data error is what the user sees
    assert cli.main(["--data", str(tmp_path / "missing.txt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


# ---------------------------------------------------------------------------------------
# class 4: atomic writes keep what the user had


def with_umask(mask):
    return lambda: os.umask(mask)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_follow_the_umask_existing_ones_keep_their_mode(tmp_path, names):
    env = cli_env(
        tmp_path,
        names,
        MICROGPT_CPU_PROFILE=str(tmp_path / "cpu.prof"),
        MICROGPT_MEM_PROFILE=str(tmp_path / "mem.txt"),
    )
    args = ["--save", "ck.json", "--steps", "2", "--samples", "1", "--stage", "flat"]
    result = run_cli(args, tmp_path, env, preexec_fn=with_umask(0o027))
    assert result.returncode == 0, result.stderr
    for name in ("ck.json", "cpu.prof", "mem.txt"):
        assert mode(tmp_path / name) == 0o640, name
    os.chmod(tmp_path / "ck.json", 0o604)
    result = run_cli(args, tmp_path, env, preexec_fn=with_umask(0o077))
    assert result.returncode == 0, result.stderr
    assert mode(tmp_path / "ck.json") == 0o604
    assert leftovers(tmp_path) == []


def test_save_through_a_symlink_updates_its_target(tmp_path, names):
    real = tmp_path / "store" / "model.json"
    real.parent.mkdir()
    real.write_text("old")
    os.chmod(real, 0o600)
    (tmp_path / "ck.json").symlink_to(os.path.relpath(real, tmp_path))
    args = ["--save", "ck.json", "--steps", "2", "--samples", "0", "--stage", "flat"]
    result = run_cli(args, tmp_path, cli_env(tmp_path, names))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ck.json").is_symlink()
    assert json.loads(real.read_text())["steps"] == 2
    assert mode(real) == 0o600


README = "# Project\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\nmore\n"


def test_bench_with_stdout_closed_writes_every_file_keeping_modes_and_links(tmp_path, names):
    """One benchmark run: stdout closed at once (`| true`), a umask, a symlinked README."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text(README)
    os.chmod(docs / "README.md", 0o604)
    (tmp_path / "README.md").symlink_to("docs/README.md")
    args = "--stages flat --steps 2 --repeat 1 --samples 1 --json b.json --markdown b.md"
    command = f"umask 027; {MICROGPT} bench {args} --update-readme README.md | true"
    result = shell(command, tmp_path, cli_env(tmp_path, names))
    record("bench ... --json --markdown --update-readme symlink | true", result.returncode, "")
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr and "Exception" not in result.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert [row["name"] for row in report["stages"]] == ["flat"]
    assert "| `flat` |" in (tmp_path / "b.md").read_text()
    assert mode(tmp_path / "b.json") == mode(tmp_path / "b.md") == 0o640
    assert (tmp_path / "README.md").is_symlink()
    text = (docs / "README.md").read_text()
    assert "old table" not in text and "| `flat` |" in text and text.endswith("more\n")
    assert mode(docs / "README.md") == 0o604
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------
# class 6 through the command line: checkpoints are untrusted


def checkpoint_files(tmp_path, good):
    """(description, path) of files that are not usable checkpoints."""
    doc = json.loads(good.read_text())
    folder = tmp_path / "bad"
    folder.mkdir()
    cases = {
        "a directory": None,
        "a binary file": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
        "UTF-16 JSON": good.read_text().encode("utf-16"),
        "deep nesting": b"[" * 100000,
        "a JSON list": b"[1, 2, 3]",
        "a 400-digit weight": good.read_bytes().replace(
            json.dumps(doc["weights"]["wte"][0][0]).encode(), b"9" * 400, 1
        ),
        "a NaN weight": good.read_bytes().replace(
            json.dumps(doc["weights"]["wte"][0][0]).encode(), b"NaN", 1
        ),
    }
    out = []
    for what, content in cases.items():
        path = folder / what.replace(" ", "-")
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        out.append((what, path))
    return out


def test_broken_checkpoints_are_one_line(tmp_path, names):
    env = cli_env(tmp_path, names)
    trained = run_cli(["--save", "ck.json", "--steps", "2", "--stage", "flat"], tmp_path, env)
    assert trained.returncode == 0, trained.stderr
    for what, path in checkpoint_files(tmp_path, tmp_path / "ck.json"):
        result = run_cli(["sample", "--load", str(path)], tmp_path, env)
        assert_one_line(result, 1, str(path), what=f"sample --load {what}")
        assert result.stdout == ""


def test_missing_checkpoint_is_one_line(tmp_path):
    result = run_cli(["sample", "--load", "nope.json"], tmp_path, cli_env(tmp_path))
    assert_one_line(result, 1, "nope.json: no such file", "--load")


# ---------------------------------------------------------------------------------------
# class 7: a closed pipe is quiet everywhere


CLOSED_PIPE_COMMANDS = {
    "train | true": "--steps 3 --stage flat | true",
    "train | head -1": "--steps 30 --stage flat | head -1",
    "train --save | true": "--steps 3 --stage flat --save ck.json | true",
    "sample | true": "sample --load ck.json | true",
    "sample | head -1": "sample --load ck.json --samples 100 | head -1",
    "stages | true": "stages | true",
    "--help | true": "--help | true",
    "bench | true": "bench --stages flat --steps 2 --repeat 1 --samples 1 | true",
    "bench | head -1": "bench --stages flat --steps 2 --repeat 1 --samples 1 | head -1",
}


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_closed_pipe_is_quiet(tmp_path, names, buffered):
    env = cli_env(tmp_path, names, buffered=buffered)
    trained = run_cli(["--save", "ck.json", "--steps", "2", "--stage", "flat"], tmp_path, env)
    assert trained.returncode == 0, trained.stderr
    for what, command in CLOSED_PIPE_COMMANDS.items():
        result = shell(f"{MICROGPT} {command}", tmp_path, env)
        if buffered:
            record(what, result.returncode, result.stderr)
        assert result.returncode == 0, (what, result.stderr)
        noise = result.stderr
        if what.startswith("bench"):  # its progress lines (and a busy machine's note) too
            progress = ("round ", "peak RSS", "note: the machine was busy")
            noise = "\n".join(line for line in noise.splitlines() if not line.startswith(progress))
        assert noise == "", (what, result.stderr)


# ---------------------------------------------------------------------------------------
# class 11: Ctrl-C, and errors naming where the input came from


def as_in_a_terminal():
    """Ctrl-C as a terminal delivers it: a test run in the background (`pytest &`) hands
    its children SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(args, cwd, env, delay, after=None):
    """(exit code, stderr lines) of the CLI sent SIGINT `delay` s after it starts, or after
    stderr shows the import of module `after` (`-X importtime` reports each import)."""
    argv = [sys.executable, *(["-X", "importtime"] if after else []), "-m", "microgpt", *args]
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    lines = []
    if after:
        for line in proc.stderr:
            lines.append(line)
            if line.split("|")[-1].strip() == after:
                break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    lines += proc.stderr.readlines()
    proc.wait(timeout=60)
    return proc.returncode, [line for line in lines if not line.startswith("import time:")]


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, names, delay):
    args = ["--stage", "baseline", "--steps", "500"]
    code, lines = interrupt(args, tmp_path, cli_env(tmp_path, names), delay)
    record(f"Ctrl-C {delay} s into --stage baseline --steps 500", code, "".join(lines))
    assert (code, lines) == (130, ["microgpt: interrupted\n"])


@pytest.mark.parametrize("delay", [0.005, 0.02, 0.05, 0.1])
def test_ctrl_c_while_the_modules_load(tmp_path, names, delay):
    """SIGINT while the package's modules load (timed from the package's first import,
    so a slow machine cannot move it into the interpreter's own start-up)."""
    args = ["--stage", "baseline", "--steps", "50"]
    env = cli_env(tmp_path, names)
    code, lines = interrupt(args, tmp_path, env, delay, after="microgpt.errors")
    record(f"Ctrl-C {delay} s after microgpt starts loading", code, "".join(lines))
    assert (code, lines) == (130, ["microgpt: interrupted\n"])


def test_ctrl_c_in_bench_is_one_line(tmp_path, names):
    args = ["bench", "--stages", "baseline", "--steps", "30", "--repeat", "5"]
    code, lines = interrupt(args, tmp_path, cli_env(tmp_path, names), 1.5)
    record("Ctrl-C 1.5 s into bench", code, "".join(lines))
    assert code == 130 and lines[-1] == "microgpt bench: interrupted\n", lines
    assert all(line.startswith(("round ", "microgpt bench: interrupted")) for line in lines)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file; check the path given to MICROGPT_DATA"),
        (b"", "(MICROGPT_DATA): the file is empty"),
        (b"\n \n", "(MICROGPT_DATA): has no names"),
        ("emma\nzoe\n".encode("utf-16"), "(MICROGPT_DATA): is UTF-16"),
        (b"caf\xe9\n", "(MICROGPT_DATA): not UTF-8"),
        ("dir", "is a directory; give MICROGPT_DATA"),
    ],
    ids=["missing", "empty", "blank", "utf-16", "latin-1", "directory"],
)
def test_errors_about_microgpt_data_name_it(tmp_path, content, fragment):
    path = tmp_path / "env-names.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    result = run_cli(["--steps", "1"], tmp_path, cli_env(tmp_path, path))
    err = assert_one_line(result, 1, "MICROGPT_DATA", fragment, what=f"MICROGPT_DATA {fragment}")
    assert "--data" not in err
