"""One training run of the `torch` stage, alone or as one process of a data-parallel run,
that reports every step in full: what the benchmark's data-parallel rounds and chapter
18's proof launch.

    python -m microgpt.tools.parallel_run --data PATH --steps N --batch-size B [...]
    torchrun --standalone --nproc-per-node N -m microgpt.tools.parallel_run [the same]

Each step trains the same consecutive names of the seed-42 run that a one-process run with
the whole batch (N x B names) trains (`microgpt.tools.distributed`). Process 0 prints one
JSON line: every step's loss in full (the command line rounds it to four digits), and for
the steps after `--warmup` the wall and CPU seconds of each and the real target tokens of
the whole batch, with the CPU seconds of every process added up over those steps.
`launch` starts such a run (`torchrun` as `python -m torch.distributed.run`, so that it
needs no script on PATH) and returns that line, read.
"""

import argparse
import json
import os
import subprocess
import sys
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

from .. import stages
from ..config import GPTConfig
from ..data import read_names
from ..train import Run
from . import distributed
from .timing import BenchError, time_steps

ROOT = Path(__file__).resolve().parents[2]  # the folder holding `microgpt`
SHAPE_FIELDS = ("n_layer", "n_embd", "n_head", "block_size")


def shape_text(cfg):
    """`n_layer,n_embd,n_head,block_size` of `cfg`, as `--shape` takes it."""
    return ",".join(str(getattr(cfg, field)) for field in SHAPE_FIELDS)


def parse_shape(text):
    return GPTConfig(**dict(zip(SHAPE_FIELDS, map(int, text.split(",")))))


def parser():
    p = argparse.ArgumentParser(prog="python -m microgpt.tools.parallel_run")
    p.add_argument("--data", required=True, help="names file")
    p.add_argument("--steps", type=int, required=True, help="steps timed after the warm-up")
    p.add_argument("--warmup", type=int, default=0, help="steps trained before the timed ones")
    p.add_argument("--batch-size", type=int, required=True, help="names per process and step")
    p.add_argument("--shape", type=parse_shape, default=GPTConfig(), help=",".join(SHAPE_FIELDS))
    p.add_argument("--timeout", type=float, help="seconds a collective may wait for the others")
    return p


def batch_tokens(run, batch_size, step):
    """Real target tokens of the names that step `step` of a run with `batch_size` names
    per step trains on: the work of the step (as `train` picks its names)."""
    docs, cfg = run.docs, run.model.cfg
    names = (docs[(step * batch_size + i) % len(docs)] for i in range(batch_size))
    return sum(cfg.positions(len(run.tokenizer.encode(name))) for name in names)


def train_and_time(args, launch):
    """The report of this process's run: a dict (see the module's docstring)."""
    import torch

    module = stages.load("torch")
    world_size = launch.world_size if launch else 1
    if launch:
        timeout = timedelta(seconds=args.timeout) if args.timeout else distributed.TIMEOUT
        distributed.start(launch, module.check_options(device="cpu"), timeout)
    run = Run(read_names(args.data), module, cfg=args.shape, options={"device": "cpu"})
    if launch:
        distributed.distribute(launch, run.model)
    names_per_step = args.batch_size * world_size
    num_steps = args.warmup + args.steps
    losses, wall, cpu = [], [], []
    with distributed.guard(launch) if launch else nullcontext():
        steps = run.train(num_steps, names_per_step)
        for _ in range(args.warmup):
            losses.append(next(steps)[1])
        wall, cpu = time_steps(lambda: losses.append(next(steps)[1]), args.steps)
        cpu_all = torch.tensor([sum(cpu)], dtype=torch.float64)
        if launch:
            torch.distributed.all_reduce(cpu_all)  # every process's CPU seconds, added up
    if launch:
        distributed.stop()
    tokens = [batch_tokens(run, names_per_step, s) for s in range(args.warmup, num_steps)]
    return {
        "torch": torch.__version__,
        "processes": world_size,
        "threads": torch.get_num_threads(),  # what the stage chose for this width
        "names_per_step": names_per_step,
        "losses": losses,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_all_s": float(cpu_all[0]),
        "tokens": tokens,
    }


def main(argv=None):
    args = parser().parse_args(argv)
    launch = distributed.launch_from(os.environ)
    distributed.silence(os.environ)  # processes other than 0 print nothing
    try:
        report = train_and_time(args, launch)
    except distributed.LostProcess as e:
        print(f"parallel_run: error: {e}", file=sys.stderr)
        return 1
    if launch is None or launch.rank == 0:
        print(json.dumps(report), flush=True)
    return 0


def command(processes, args):
    """The command line that starts a run of `processes` processes with these arguments
    (the worker's flags): plain Python for one, torchrun for more."""
    if processes == 1:
        return [sys.executable, "-m", "microgpt.tools.parallel_run", *args]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    torchrun += ["--nproc-per-node", str(processes)]
    return [*torchrun, "-m", "microgpt.tools.parallel_run", *args]


def launch(processes, threads, args, timeout=600):
    """Start a run of `processes` processes of `threads` CPU threads each, wait for it,
    and return process 0's report; a run that fails is a `BenchError` with its last line."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = str(threads)  # PyTorch's threads in each process
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    try:
        done = subprocess.run(
            command(processes, args),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"a run of {processes} processes took over {timeout} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"a run of {processes} processes failed: {last}")
    return json.loads(lines[-1])


if __name__ == "__main__":
    sys.exit(main())
