"""Data-parallel training under torchrun: the launch, the process group, who speaks.

`torchrun --standalone --nproc-per-node N -m microgpt --stage torch --batch-size B`
starts N copies of the command with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT set (as nanoGPT is launched). Each copy reads the same names, shuffles them
with the same seed and builds the same model; each step, every process takes its slice
of the same N x B consecutive names, and DistributedDataParallel all-reduces the
gradients (gloo on the CPU, NCCL on CUDA), so every process applies the same Adam
update to the same weights. Process 0 prints and saves; the others print nothing, except
the one line that says a process of the run was lost, which any survivor may be the one
to see.

PyTorch is imported inside the functions that start a run: the command line imports
this module, and listing the stages must not import torch.
"""

import os
import signal
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from .. import stages
from ..errors import MicrogptError, single_line

# How long a collective (or the start, waiting for every process) may wait for the
# others. A process that dies closes its connections and is noticed at once; this bounds
# the wait for one that hangs. It is longer than torch.compile's first build, which
# every process does on its own, at its own speed, before the first all-reduce.
TIMEOUT = timedelta(minutes=5)
LAUNCH = "torchrun --standalone --nproc-per-node N -m microgpt --stage torch --batch-size B"


class LaunchError(MicrogptError):
    """A data-parallel launch that cannot work (exit 2, before any work)."""


class LostProcess(MicrogptError):
    """Another process of the run stopped, or the launcher stopped this one (exit 1)."""


@dataclass(frozen=True)
class Launch:
    """This process's place in a data-parallel run, as torchrun describes it."""

    rank: int  # 0 .. world_size - 1; process 0 prints and saves
    world_size: int
    local_rank: int  # its index on this machine: the GPU it uses

    def name(self):
        return f"process {self.rank} of {self.world_size}"


def launch_from(environ):
    """The `Launch` that `environ` describes; None outside torchrun (no WORLD_SIZE or RANK).

    `LaunchError` when the variables cannot start a run: a rank without a size, or a size
    without the rendezvous address that torchrun gives every process.
    """
    given = [name for name in ("WORLD_SIZE", "RANK") if environ.get(name)]
    if not given:
        return None
    shown = " and ".join(f"{name}={single_line(environ[name])[:20]}" for name in given)
    needed = ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")
    missing = [name for name in needed if not environ.get(name)]
    if missing:
        raise LaunchError(
            f"{shown} is set without {', '.join(missing)} (torchrun gives every process "
            f"a rank and a rendezvous address): start a data-parallel run with {LAUNCH}, "
            f"or unset {' and '.join(given)}"
        )
    try:
        world_size, rank = int(environ["WORLD_SIZE"]), int(environ["RANK"])
        local_rank = int(environ.get("LOCAL_RANK") or rank)
    except ValueError:
        raise LaunchError(f"{shown}: not whole numbers; start the run with {LAUNCH}") from None
    if not 0 <= rank < world_size:
        raise LaunchError(f"{shown}: RANK must be from 0 to WORLD_SIZE - 1; start it with {LAUNCH}")
    return Launch(rank, world_size, local_rank)


def is_other_rank(environ):
    """Whether this process is one of a run's, but not process 0: it prints nothing.
    (Variables that cannot start a run make no run: that process says so.)"""
    try:
        launch = launch_from(environ)
    except LaunchError:
        return False
    return launch is not None and launch.rank != 0


def silence(environ):
    """Outside process 0 of a run, standard output and error go nowhere; a lost process
    (`guard`) and a crash's traceback (a bug) are still written to the terminal."""
    if is_other_rank(environ):
        sys.stdout = sys.stderr = open(os.devnull, "w")  # for the rest of the process's life
        sys.excepthook = traceback_to_terminal


def traceback_to_terminal(kind, value, tb):
    """`sys.excepthook` that writes to the terminal's stderr, not `sys.stderr`."""
    traceback.print_exception(kind, value, tb, file=sys.__stderr__)


def check_run(launch, stage, batch_size):
    """`LaunchError` for a data-parallel run these flags cannot make."""
    where = f"a data-parallel run ({launch.world_size} processes)"
    if not stage.parallel:
        parallel = ", ".join(s.name for s in stages.STAGES if s.parallel)
        raise LaunchError(f"{where} needs --stage {parallel}, not {stage.name}")
    if batch_size is None:
        raise LaunchError(
            f"{where} needs --batch-size B: each process trains on B names per step, "
            f"{launch.world_size} x B in all"
        )


def check_device(launch, device):
    """`LaunchError` for a device a data-parallel run cannot use."""
    if device.type not in ("cpu", "cuda"):
        raise LaunchError(f"a data-parallel run uses cpu (gloo) or cuda (NCCL), not {device.type}")
    if device.type == "cuda":
        import torch

        if launch.local_rank >= torch.cuda.device_count():
            raise LaunchError(
                f"{launch.name()} has no GPU of its own ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU"
            )


def names_per_step(launch, args):
    """The batch every process is given: its own B names, times the number of processes."""
    return args.batch_size * launch.world_size if launch else args.batch_size


def start(launch, device, timeout=TIMEOUT):
    """Join the run's process group: gloo on the CPU, NCCL on CUDA (one GPU per process).

    From here on, SIGTERM (which torchrun sends to every process once one fails) ends
    this process with one line.
    """
    import torch
    import torch.distributed as dist

    signal.signal(signal.SIGTERM, lambda signum, frame: terminated(launch))
    if device.type == "cuda":
        torch.cuda.set_device(launch.local_rank)  # a model on "cuda" lands on this GPU
    backend = "nccl" if device.type == "cuda" else "gloo"
    with guard(launch):
        dist.init_process_group(
            backend, rank=launch.rank, world_size=launch.world_size, timeout=timeout
        )


def distribute(launch, model):
    """The model trains as this process of the run (DistributedDataParallel)."""
    with guard(launch):
        model.distribute(launch.rank, launch.world_size)


def stop():
    """Leave the process group, so the process ends without the backend's warnings."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def terminated(launch):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one line, however many arrive
    lost(launch, "was stopped by SIGTERM (torchrun sends it once a process has failed)")


@contextmanager
def guard(launch):
    """One line, and the end of this process, when the run loses a process.

    A process that dies closes its connections: the others' next collective fails at
    once. One that hangs is given up after the process group's timeout. Each ends here
    in `LostProcess`. Ctrl-C stays Ctrl-C: a SIGINT that arrives with a lost connection
    (every process gets one, and the first to stop closes its connections) is raised as
    itself.
    """
    import torch.distributed as dist

    try:
        yield
    except RuntimeError as e:
        if not isinstance(e, dist.DistError) and not looks_distributed(str(e)):
            raise
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        check_interrupt()  # a pending Ctrl-C is raised here, before the lost connection
        lost(
            launch, f"lost contact with the others ({reason(e)}): another process stopped or hangs"
        )


def check_interrupt():
    """Nothing but a Python-level call: CPython runs the signal handlers still pending when
    a function starts, so a SIGINT that came with the lost connection raises here."""


def looks_distributed(message):
    return any(word in message for word in ("gloo", "NCCL", "Connection closed", "Timed out"))


def reason(error):
    """The first sentence of a backend's error, without its source file and line."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]  # "[.../pair.cc:553] Connection closed by peer ..."
    return single_line(text.split(". ")[0])[:200]


def lost(launch, what):
    """Raise `LostProcess`; outside process 0 write its line too, since its stderr is quiet."""
    error = LostProcess(f"{launch.name()} {what}")
    if launch.rank and sys.__stderr__ is not None:
        print(f"microgpt: error: {error}", file=sys.__stderr__, flush=True)
    raise error from None
