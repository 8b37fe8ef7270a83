"""Data-parallel training on PyTorch's engine, on the CPU with gloo: N processes train as
one process with N times the batch, and every way a run can go wrong ends in one line.

The processes are started as torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), in one process group, so that a test can kill one of them or
send the group Ctrl-C as a terminal does; two tests go through torchrun itself, to see
what a user sees. `data_parallel_run.py` is the same run through the package's functions,
printing every loss in full where the command line prints four digits.

Most of these start several processes that each load PyTorch: they are `slow` (CI runs
them; `make check` runs the two-process equality only).
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="data-parallel training needs PyTorch")

from microgpt import stages  # noqa: E402
from microgpt.config import GPTConfig  # noqa: E402
from microgpt.tools.cli import main  # noqa: E402
from microgpt.train import Run  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("data_parallel_run.py")
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
TOLERANCE = 1e-12
SHAPE = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=6)
ENDS_WITHIN = 120  # seconds: generous for a loaded 2-core machine; the point is "no hang"

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(tmp_path, **extra):
    """No inherited launch or microgpt variables; one thread per process, as torchrun sets."""
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "MICROGPT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        PYTHONPATH=str(ROOT),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        MICROGPT_DATA_URL="http://127.0.0.1:9/names.txt",  # never a download
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def as_in_a_terminal():
    """Ctrl-C interrupts, as in a terminal (a test runner may start children ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def launch(tmp_path):
    """`start(n, command)`: n processes as torchrun starts them, in one process group
    (process 0 leads it); each one still running at the end of the test is killed."""
    started = []

    def start(n, command, env=None):
        env = clean_env(tmp_path, **(env or {}))
        env.update(WORLD_SIZE=str(n), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        procs = []
        for rank in range(n):
            proc = subprocess.Popen(
                [sys.executable, *command],
                cwd=tmp_path,
                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                process_group=0 if rank == 0 else procs[0].pid,
                preexec_fn=as_in_a_terminal,
            )
            procs.append(proc)
            started.append(proc)
        return procs

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(procs):
    """[(exit code, stdout, stderr)] of every process, each within ENDS_WITHIN seconds."""
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=ENDS_WITHIN)
        results.append((proc.returncode, out, err))
    return results


def wait_for_torch_to_load(proc):
    """Return once the process has mapped PyTorch's library: it is importing torch (or
    has just done so), past the interpreter's own start, where Ctrl-C is Python's."""
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + ENDS_WITHIN
    while "libtorch" not in maps.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.005)


def first_line(proc, prefix):
    """Read the process's stdout up to a line that starts with `prefix` (training is on)."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r}: {proc.stderr.read()}")


# ---------------------------------------------------------------------------------------
# the equality: N processes with B names each are one process with N x B names


def one_process_losses(names_docs, steps, batch_size, cfg=GPTConfig()):
    run = Run(names_docs, stages.load("torch"), cfg=cfg, options={"device": "cpu"})
    return [loss for _, loss in run.train(steps, batch_size)]


@pytest.mark.parametrize(
    "processes, batch_size, cfg",
    [(2, 4, GPTConfig()), pytest.param(3, 5, SHAPE, marks=pytest.mark.slow)],
    ids=["2x4-default", "3x5-2x8x2-block6"],
)
def test_n_processes_equal_one_process_with_the_whole_batch(
    launch, names_path, names_docs, processes, batch_size, cfg
):
    steps = 8
    shape = ",".join(str(getattr(cfg, f)) for f in ("n_layer", "n_embd", "n_head", "block_size"))
    args = [str(DRIVER), str(names_path), str(steps), str(batch_size), "120", shape]
    results = finish(launch(processes, args))
    assert [code for code, _, _ in results] == [0] * processes, results
    assert all(out == "" for _, out, _ in results[1:])  # process 0 alone prints
    got = [float(line) for line in results[0][1].split()]
    expected = one_process_losses(names_docs, steps, processes * batch_size, cfg)
    assert len(got) == steps
    assert max(abs(a - b) for a, b in zip(got, expected)) <= TOLERANCE


def test_a_mean_of_the_processes_means_would_not_be_the_batch_mean(names_docs):
    """Why the loss is divided by the whole batch's token count: in the first step of the
    run above the two processes' slices hold different numbers of tokens, and the mean of
    their means is another number (so the equality test above can tell the two apart)."""
    run = Run(names_docs, stages.load("torch"), options={"device": "cpu"})
    names = [run.tokenizer.encode(doc) for doc in run.docs[:8]]
    slices = [names[:4], names[4:]]
    sums, counts = [], []
    with torch.no_grad():
        for part in slices:
            ids, targets = run.model.batch_tensors(part)
            sums.append(float(run.model.net(ids, targets)))
            counts.append(int((targets != -1).sum()))
    assert counts[0] != counts[1]
    batch_mean = sum(sums) / sum(counts)
    mean_of_means = (sums[0] / counts[0] + sums[1] / counts[1]) / 2
    assert abs(batch_mean - mean_of_means) > 1e6 * TOLERANCE  # measured: 4.5e-5
    assert batch_mean == pytest.approx(one_process_losses(names_docs, 1, 8)[0], abs=TOLERANCE)


# ---------------------------------------------------------------------------------------
# torchrun itself, as a user launches it


AUDIT = """\
import os, sys

def record(event, args):
    if event == "os.rename" and os.environ.get("RANK"):
        with open(os.path.join(os.environ["AUDIT_DIR"], "rank" + os.environ["RANK"]), "a") as f:
            f.write(os.fsdecode(args[1]) + "\\n")

sys.addaudithook(record)
"""


def torchrun(args, tmp_path, env):
    return subprocess.Popen(
        [TORCHRUN, *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # its own group, as a terminal's foreground job
        preexec_fn=as_in_a_terminal,
    )


def readme_command():
    """The README's torchrun command as written: (arguments, processes, names per process)."""
    text = (ROOT / "README.md").read_text()
    runnable = re.compile(r"torchrun --standalone --nproc-per-node \d")  # not the synopsis
    line = next(line for line in text.splitlines() if runnable.match(line))
    args = shlex.split(line)[1:]
    return args, int(args[args.index("--nproc-per-node") + 1]), int(args[-1])


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not beside this Python")
def test_the_readme_torchrun_command_trains_as_one_process_with_the_whole_batch(
    tmp_path, names_path, capsys
):
    """The README's command (with --save): output byte for byte the one-process run's with
    N x B names, and the checkpoint written once, atomically (one rename), by process 0
    only (an audit hook records every rename any process makes)."""
    args, processes, batch_size = readme_command()
    assert args[-2:] == ["--batch-size", str(batch_size)]
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "sitecustomize.py").write_text(AUDIT)
    env = clean_env(tmp_path, AUDIT_DIR=str(audit), MICROGPT_DATA=str(names_path))
    env["PYTHONPATH"] = os.pathsep.join([str(audit), str(ROOT)])
    ckpt, alone = tmp_path / "out" / "model.json", tmp_path / "alone.json"
    ckpt.parent.mkdir()
    proc = torchrun([*args, "--save", str(ckpt)], tmp_path, env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert err == ""  # nothing from any process, nor from torchrun (OMP_NUM_THREADS is set)

    whole = ["--stage", "torch", "--batch-size", str(processes * batch_size)]
    assert main([*whole, "--data", str(names_path), "--save", str(alone)]) == 0
    assert out == capsys.readouterr().out
    assert out.count("step ") == 1000 and out.count("sample ") == 20
    assert (audit / "rank0").read_text().splitlines() == [str(ckpt)]
    assert sorted(p.name for p in audit.iterdir()) == ["rank0", "sitecustomize.py"]
    assert os.listdir(ckpt.parent) == ["model.json"]  # no temporary file left behind
    saved, expected = (json.loads(path.read_text()) for path in (ckpt, alone))
    assert saved.keys() == expected.keys() and saved["config"] == expected["config"]
    for name, matrix in expected["weights"].items():
        rows = zip(saved["weights"][name], matrix)
        assert max(abs(a - b) for row, want in rows for a, b in zip(row, want)) <= TOLERANCE


def children(pid):
    """The processes whose parent is `pid`, with their RANK (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().split()[3]) == pid:
                environ = (entry / "environ").read_bytes().split(b"\0")
                ranks = [v[5:] for v in environ if v.startswith(b"RANK=")]
                found[int(entry.name)] = int(ranks[0]) if ranks else None
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not beside this Python")
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.parametrize("fault", ["kill process 1", "ctrl-c"])
def test_what_a_user_of_torchrun_sees(tmp_path, names_path, fault):
    """One line of ours, then torchrun's own report (a traceback and, for a failed process,
    a table of exit codes), which we do not control."""
    args = ["--standalone", "--nproc-per-node", "2", "-m", "microgpt", "--stage", "torch"]
    args += ["--batch-size", "4", "--steps", "100000", "--data", str(names_path)]
    proc = torchrun(args, tmp_path, clean_env(tmp_path))
    first_line(proc, "step ")
    workers = children(proc.pid)
    assert sorted(workers.values()) == [0, 1]
    if fault == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches torchrun's group
    else:
        os.kill(next(pid for pid, rank in workers.items() if rank == 1), signal.SIGKILL)
    _, err = proc.communicate(timeout=ENDS_WITHIN)
    ours = [line for line in err.splitlines() if line.startswith("microgpt:")]
    if fault == "ctrl-c":
        assert ours == ["microgpt: interrupted"], err
    else:
        assert len(ours) == 1, err
        assert ours[0].startswith("microgpt: error: process 0 of 2 "), err
        assert "Root Cause" in err and "rank      : 1" in err and "SIGKILL" in err
        assert err.index(ours[0]) < err.index("Root Cause")
    assert "[rank" not in err  # no traceback from our processes
    assert proc.returncode != 0
    for pid in workers:  # every process of the run has ended
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


# ---------------------------------------------------------------------------------------
# faults, process by process


def cli_args(names_path, *extra):
    return ["-m", "microgpt", "--stage", "torch", "--data", str(names_path), *extra]


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_process_ends_the_other_with_one_line(launch, names_path, victim):
    procs = launch(2, cli_args(names_path, "--batch-size", "4", "--steps", "100000"))
    first_line(procs[0], "step ")
    procs[victim].kill()
    (survivor,) = set(range(2)) - {victim}
    code, _, err = finish([procs[survivor]])[0]
    assert code == 1
    assert err.startswith(f"microgpt: error: process {survivor} of 2 lost contact with the others")
    assert err.count("\n") == 1 and "another process stopped or hangs" in err


@pytest.mark.slow
def test_a_hung_process_is_given_up_after_the_timeout(launch, names_path):
    """A process that stops answering (SIGSTOP) is given up after the collective timeout
    (3 s here; the command line's is `distributed.TIMEOUT`)."""
    procs = launch(2, [str(DRIVER), str(names_path), "100000", "4", "3"])
    procs[0].stdout.readline()  # the first loss: both processes are training
    procs[1].send_signal(signal.SIGSTOP)
    started = time.monotonic()
    code, _, err = finish([procs[0]])[0]
    assert code == 1
    assert "process 0 of 2 lost contact with the others (Timed out" in err
    assert time.monotonic() - started < ENDS_WITHIN


@pytest.mark.slow
@pytest.mark.parametrize("when", ["while torch loads", "while training"])
def test_ctrl_c_ends_every_process_with_130_and_one_line(launch, names_path, when):
    procs = launch(2, cli_args(names_path, "--batch-size", "4", "--steps", "100000"))
    if when == "while training":
        first_line(procs[0], "step ")
    else:
        for proc in procs:
            wait_for_torch_to_load(proc)
    os.killpg(procs[0].pid, signal.SIGINT)  # the whole group, as a terminal sends it
    results = finish(procs)
    assert [code for code, _, _ in results] == [130, 130]
    assert [err for _, _, err in results] == ["microgpt: interrupted\n", ""]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, fragment",
    [
        (
            ["--stage", "torch"],
            "needs --batch-size B: each process trains on B names per step, 2 x B in all",
        ),
        (["--stage", "tensor", "--batch-size", "4"], "needs --stage torch, not tensor"),
        (["--stage", "torch", "--batch-size", "4", "--device", "mps"], "mps"),
    ],
)
def test_a_launch_that_cannot_work_is_one_line_exit_2(launch, names_path, extra, fragment):
    args = ["-m", "microgpt", "--data", str(names_path), "--steps", "3", *extra]
    results = finish(launch(2, args))
    assert [code for code, _, _ in results] == [2, 2]
    (_, out0, err0), (_, out1, err1) = results
    assert (out0, out1, err1) == ("", "", "")  # process 0 alone says it
    assert err0.count("\n") == 1 and fragment in err0, err0


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set without RANK, MASTER_ADDR, MASTER_PORT"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "is set without MASTER_ADDR, MASTER_PORT"),
        (
            {"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
            "RANK must be from 0 to WORLD_SIZE - 1",
        ),
        (
            {"WORLD_SIZE": "two", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
            "not whole numbers",
        ),
    ],
    ids=["size-alone", "no-rendezvous", "rank-out-of-range", "not-a-number"],
)
def test_launch_variables_that_cannot_start_a_run_are_one_line_exit_2(
    tmp_path, names_path, env, fragment
):
    args = ["--stage", "torch", "--batch-size", "4", "--data", str(names_path)]
    result = subprocess.run(
        [sys.executable, "-m", "microgpt", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=ENDS_WITHIN,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
    assert "torchrun --standalone --nproc-per-node N -m microgpt" in result.stderr
