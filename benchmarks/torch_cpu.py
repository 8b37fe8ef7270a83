"""The `torch` stage on the CPU, measured: beside `tensor`, eager and compiled, and data-parallel.

    python benchmarks/torch_cpu.py engines [--rounds R] [--data PATH]
    python benchmarks/torch_cpu.py parallel [--rounds R] [--steps N] [--data PATH]

`engines`: ms per step (CPU time and wall-clock) and training tokens per second (of wall
time, and of CPU time, which other work on the machine disturbs less) of `tensor` and of
`torch` in float64 and float32, eager and compiled, at microgpt's shape and at 2 layers x
256, one name and 32 names per step: every model built and warmed up first (compiling
included), then R rounds, each timing every cell in turn (interleaved), medians of the
rounds. Each stage sets its own threads: `tensor` one BLAS thread, `torch` one thread up to
width 64 and all the cores above (OMP_NUM_THREADS=1: one thread everywhere).

`parallel`: tokens per second of DistributedDataParallel on gloo at width 16 (microgpt's
shape) and 256 (2 layers), 32 and 64 names per step in all: one process (one thread, and
all the cores' threads) against N processes of one thread each, each started by torchrun,
the rounds interleaved. A worker (`parallel-worker`, under torchrun) trains, times its
steps after a warm-up, and process 0 prints the median seconds per step.

Tokens are the real target tokens of the names trained on (about 7 per name).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from microgpt import stages  # noqa: E402
from microgpt.config import GPTConfig  # noqa: E402
from microgpt.data import read_names  # noqa: E402
from microgpt.tools import distributed  # noqa: E402
from microgpt.train import Run  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "names.txt"
SHAPES = {"1x16": GPTConfig(), "2x256": GPTConfig(n_layer=2, n_embd=256, n_head=4)}
COMPILED = (False, True)


def shape_of(width):
    return SHAPES["1x16"] if width == 16 else GPTConfig(n_layer=2, n_embd=width, n_head=4)


class Cell:
    """One model training on and on, timed in chunks of `chunk` steps."""

    def __init__(self, label, docs, cfg, batch_size, stage, options, chunk):
        self.label, self.cfg, self.batch_size, self.chunk = label, cfg, batch_size, chunk
        self.run = Run(docs, stages.load(stage), cfg=cfg, options=options)
        self.steps = self.run.train(10**9, batch_size)  # a long schedule: lr barely moves
        self.done = 0
        self.cpu, self.wall, self.tokens = [], [], []

    def names_tokens(self, step):
        docs, b = self.run.docs, self.batch_size or 1
        batch = [docs[(step * b + i) % len(docs)] for i in range(b)]
        return sum(self.cfg.positions(len(self.run.tokenizer.encode(name))) for name in batch)

    def advance(self, steps, timed=True):
        tokens = sum(self.names_tokens(self.done + i) for i in range(steps))
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(steps):
            next(self.steps)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        self.done += steps
        if timed:
            self.cpu.append(cpu / steps)
            self.wall.append(wall / steps)
            self.tokens.append(tokens / steps)  # per step, like the times


def engines(docs, rounds):
    cells = []
    for shape_name, cfg in SHAPES.items():
        for batch_size in (None, 32):
            small = cfg.n_embd <= 64
            chunk = (40 if batch_size is None else 8) if small else (8 if batch_size is None else 2)
            variants = [("tensor", "tensor", None)]
            for dtype in ("float64", "float32"):
                for compiled in COMPILED:
                    label = f"torch {dtype}{' compiled' if compiled else ''}"
                    options = {"device": "cpu", "dtype": dtype, "compile": compiled}
                    variants.append((label, "torch", options))
            for label, stage, options in variants:
                name = f"{shape_name} B={batch_size or 1} {label}"
                cell = Cell(name, docs, cfg, batch_size, stage, options, chunk)
                began = time.perf_counter()
                cell.advance(3, timed=False)  # warm-up: compiling, caches, allocator
                print(f"built {name} ({time.perf_counter() - began:.1f} s)", file=sys.stderr)
                cells.append(cell)
    for r in range(rounds):
        for cell in cells:
            cell.advance(cell.chunk)
        print(f"round {r + 1} / {rounds}", file=sys.stderr, flush=True)
    print(
        "| shape | batch | engine | CPU ms/step | wall ms/step | tokens/s (wall) "
        "| tokens per CPU s | CPU time vs tensor |"
    )
    print("|:--|--:|:--|--:|--:|--:|--:|--:|")
    base = {}
    for cell in cells:
        cpu, wall = statistics.median(cell.cpu) * 1e3, statistics.median(cell.wall) * 1e3
        per_wall = statistics.median(t / w for t, w in zip(cell.tokens, cell.wall))
        per_cpu = statistics.median(t / c for t, c in zip(cell.tokens, cell.cpu))
        key = (cell.cfg, cell.batch_size)
        base.setdefault(key, cpu)
        shape = f"{cell.cfg.n_layer} x {cell.cfg.n_embd}"
        label = cell.label.split(" ", 2)[2]
        print(
            f"| {shape} | {cell.batch_size or 1} | {label} | {cpu:.3f} | {wall:.3f} | "
            f"{per_wall:,.0f} | {per_cpu:,.0f} | {cpu / base[key]:.2f}x |"
        )


def parallel_worker(args):
    """Under torchrun: train, time every step after the warm-up; process 0 prints JSON."""
    import torch

    launch = distributed.launch_from(os.environ)
    module = stages.load("torch")
    cfg = shape_of(args.width)
    docs = read_names(args.data)
    distributed.start(launch, module.check_options(device="cpu"))
    run = Run(docs, module, cfg=cfg, options={"device": "cpu"})
    if args.ddp:
        distributed.distribute(launch, run.model)
    per_process = args.batch // launch.world_size
    steps = run.train(10**9, per_process * launch.world_size)
    cell = Cell.__new__(Cell)  # only its token counting
    cell.run, cell.cfg, cell.batch_size = run, cfg, args.batch
    times, cpu_times, tokens = [], [], 0

    for step in range(args.warmup + args.steps):
        began, cpu = time.perf_counter(), time.process_time()
        next(steps)
        if step >= args.warmup:
            times.append(time.perf_counter() - began)
            cpu_times.append(time.process_time() - cpu)
            tokens += cell.names_tokens(step)
    distributed.stop()
    if launch.rank == 0:
        median, cpu = statistics.median(times), statistics.median(cpu_times)
        tokens /= len(times)
        threads = torch.get_num_threads()  # what the stage chose
        print(
            json.dumps(
                {"median_s": median, "cpu_s": cpu, "tokens_per_step": tokens, "threads": threads}
            )
        )


def parallel(docs_path, rounds, steps):
    torchrun = Path(sys.executable).with_name("torchrun")
    configs = []
    for width in (16, 256):
        for batch in (32, 64):
            configs.append((width, batch, 1, 1, False))  # one process, one thread, no DDP
            configs.append((width, batch, 1, 1, True))  # the same through DDP (1 process)
            if width > 64:  # the stage uses one thread up to width 64, whatever is allowed
                configs.append((width, batch, 1, os.cpu_count(), True))  # every core's thread
            configs.append((width, batch, 2, 1, True))  # two processes of one thread
    results = {config: [] for config in configs}
    for r in range(rounds):
        for config in configs:
            width, batch, procs, threads, ddp = config
            command = [str(torchrun), "--standalone", "--nproc-per-node", str(procs)]
            command += [__file__, "parallel-worker", "--width", str(width)]
            command += ["--batch", str(batch), "--steps", str(steps), "--data", str(docs_path)]
            command += ["--ddp"] if ddp else []
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[config].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(config, results[config][-1], file=sys.stderr, flush=True)
        print(f"round {r + 1} / {rounds}", file=sys.stderr, flush=True)
    print(
        "| width | names/step | processes x threads | DDP | wall ms/step | "
        "process 0's CPU ms/step | tokens/s |"
    )
    print("|--:|--:|:--|:--|--:|--:|--:|")
    for (width, batch, procs, threads, ddp), measured in results.items():
        median = statistics.median(m["median_s"] for m in measured)
        cpu = statistics.median(m["cpu_s"] for m in measured)
        tokens, threads = measured[0]["tokens_per_step"], measured[0]["threads"]
        print(
            f"| {width} | {batch} | {procs} x {threads} | {'yes' if ddp else 'no'} | "
            f"{median * 1e3:.2f} | {cpu * 1e3:.2f} | {tokens / median:,.0f} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["engines", "parallel", "parallel-worker"])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="names file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per process run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ddp", action="store_true")
    args = parser.parse_args(argv)
    if args.part == "engines":
        engines(read_names(args.data), args.rounds)
    elif args.part == "parallel":
        parallel(args.data, args.rounds, args.steps)
    else:
        parallel_worker(args)


if __name__ == "__main__":
    main()
