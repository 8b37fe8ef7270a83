"""The `lite/` scripts and the environment follow the package's rules.

The site builder reads its names file as the package reads it, and tries its folders,
before building: bad data is the package's own one line (exit 1), an unwritable
`--output` or cache one line (exit 2), Ctrl-C one line (exit 130), and no site or
temporary folder is left. `serve.py` refuses a port that is no port. A broken optional
package (numpy that fails to import) leaves the default stage choice to a stage that
loads. Each hostile input is one row of HOSTILE_TABLE (see `helpers.record`).
"""

import os
import signal
import subprocess
import sys

import build_site
import pytest
from helpers import NAMES, ROOT, assert_one_line, cli_env, record, run_cli

from microgpt import data

BUILD = [sys.executable, str(ROOT / "lite" / "build_site.py")]
SERVE = [sys.executable, str(ROOT / "lite" / "serve.py")]


def site_env(tmp_path, **extra):
    env = cli_env(tmp_path, MICROGPT_SITE_CACHE=str(tmp_path / "site-cache"))
    env.update(extra)
    return env


def run_script(argv, tmp_path, env=None, timeout=120):
    return subprocess.run(
        argv,
        cwd=tmp_path,
        env=env or site_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def bad_names_files(tmp_path):
    """(what, path, fragment of the package's message) for data no site should ship."""
    cases = []
    for what, content, fragment in [
        ("empty", b"", "the file is empty"),
        ("blank", b"  \n\n\t\n", "only blank lines"),
        ("binary", b"a\x00b\xff\n", "looks like a binary file"),
        ("UTF-16", "emma\nolivia\n".encode("utf-16"), "is UTF-16 text"),
        ("not UTF-8", b"caf\xe9\n", "not UTF-8"),
    ]:
        path = tmp_path / f"{what.replace(' ', '-')}.txt"
        path.write_bytes(content)
        cases.append((what, str(path), fragment))
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: over the limit without filling the disk
        f.truncate(data.MAX_DATA_BYTES + 1)
    cases.append(("over the size limit", str(big), "MiB"))
    cases.append(("a directory", str(tmp_path), "is a directory"))
    cases.append(("missing", str(tmp_path / "gone.txt"), "no such file"))
    if os.path.exists("/dev/zero"):
        cases.append(("a device (/dev/zero)", "/dev/zero", ""))
    cases.append(("a device (/dev/null)", "/dev/null", "the file is empty"))
    return cases


def test_the_site_builder_checks_its_data_before_building(tmp_path):
    output = tmp_path / "site"
    for what, path, fragment in bad_names_files(tmp_path):
        for how, argv, env in [
            ("--data", [*BUILD, "--data", path], site_env(tmp_path)),
            ("MICROGPT_DATA", BUILD, site_env(tmp_path, MICROGPT_DATA=path)),
        ]:
            result = run_script([*argv, "--output", str(output)], tmp_path, env)
            assert_one_line(result, 1, fragment, what=f"build_site.py {how} {what}")
            assert result.stdout == ""  # not even "names from ...": nothing was built
            assert not output.exists() and not (tmp_path / "site-cache").exists()


def test_unwritable_output_or_cache_is_refused_before_building(tmp_path, readonly_dir):
    names = tmp_path / "names.txt"
    names.write_text(NAMES)
    for what, argv, env, fragment in [
        (
            "--output in a read-only folder",
            [*BUILD, "--data", str(names), "--output", str(readonly_dir / "site")],
            site_env(tmp_path),
            "--output",
        ),
        (
            "--output that is a file",
            [*BUILD, "--data", str(names), "--output", str(names)],
            site_env(tmp_path),
            "is a file; give a folder",
        ),
        (
            "MICROGPT_SITE_CACHE in a read-only folder",
            [*BUILD, "--data", str(names), "--output", str(tmp_path / "site")],
            site_env(tmp_path, MICROGPT_SITE_CACHE=str(readonly_dir / "cache")),
            "MICROGPT_SITE_CACHE",
        ),
    ]:
        result = run_script(argv, tmp_path, env)
        assert_one_line(result, 2, fragment, what=f"build_site.py {what}")
        assert result.stdout == "" and not (tmp_path / "site").exists()
    assert list(readonly_dir.iterdir()) == []


def test_ctrl_c_during_a_build_is_one_line_and_leaves_nothing(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text(NAMES)
    output = tmp_path / "out" / "site"
    proc = subprocess.Popen(
        [*BUILD, "--data", str(names), "--output", str(output)],
        cwd=tmp_path,
        env=site_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in proc.stdout:  # the build proper has begun: its files are being staged
        if "chapters" in line:
            break
    proc.send_signal(signal.SIGINT)
    proc.stdout.read()
    err = proc.stderr.read()
    code = proc.wait(timeout=120)
    record("build_site.py, Ctrl-C during the build", code, err)
    assert code == 130 and err == "build_site: interrupted\n", (code, err)
    assert not output.exists() and list(output.parent.glob("*")) == []
    assert list((tmp_path / "site-cache").glob("build-*")) == []  # its work folder is gone


def test_the_build_lends_a_home_to_a_user_without_one(tmp_path, monkeypatch):
    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(build_site, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(build_site.Path, "home", no_home)  # HOME unset, not in passwd
    env = build_site.child_environment()
    assert env["HOME"] == str(tmp_path / "cache" / "home") and os.path.isdir(env["HOME"])
    monkeypatch.undo()
    assert build_site.child_environment() is None  # a user with a home keeps it


@pytest.mark.parametrize("port", ["70000", "-1", "65536", "http", "8000.5"])
def test_serve_refuses_a_port_that_is_no_port(tmp_path, port):
    result = run_script([*SERVE, f"--port={port}"], tmp_path)
    assert_one_line(result, 2, "--port", what=f"serve.py --port {port}")
    assert "OverflowError" not in result.stderr


# ---------------------------------------------------------------------------------------
# a broken optional package, and a relative XDG_CACHE_HOME


@pytest.fixture
def broken_numpy(tmp_path):
    """A PYTHONPATH on which numpy is installed but fails to import."""
    folder = tmp_path / "broken" / "numpy"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text('raise ImportError("numpy is broken here")\n')
    return f"{folder.parent}{os.pathsep}{ROOT}"


def test_a_broken_numpy_leaves_the_default_to_a_stage_that_loads(tmp_path, broken_numpy):
    names = tmp_path / "names.txt"
    names.write_text(NAMES)
    env = cli_env(tmp_path, names)
    env_broken = dict(env, PYTHONPATH=broken_numpy)
    microgpt = [sys.executable, "-m", "microgpt"]  # run_cli would set PYTHONPATH itself
    result = run_script([*microgpt, "--steps", "2", "--samples", "1"], tmp_path, env_broken)
    record("numpy broken, default stage", result.returncode, result.stderr)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "running stage flat, not tensor" in result.stderr and "fails to import" in result.stderr
    same = run_cli(["--steps", "2", "--samples", "1", "--stage", "flat"], tmp_path, env)
    assert result.stdout == same.stdout  # flat's run, exactly
    listed = run_script([*microgpt, "stages"], tmp_path, env_broken)
    assert listed.returncode == 0 and listed.stderr == ""
    assert "* flat" in listed.stdout and "(needs numpy, which fails to import)" in listed.stdout
    asked = run_script([*microgpt, "--stage", "tensor", "--steps", "2"], tmp_path, env_broken)
    assert_one_line(asked, 1, "stage 'tensor' needs numpy", "fails to import", "reinstall")


def test_a_relative_xdg_cache_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert data.cache_path() == tmp_path / ".cache" / "microgpt" / "names.txt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "abs"))
    assert data.cache_path() == tmp_path / "abs" / "microgpt" / "names.txt"
