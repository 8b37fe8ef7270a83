"""The `torch` stage on the CPU beside `tensor`: eager and compiled, float64 and float32.

    python benchmarks/torch_cpu.py [--rounds R] [--data PATH] [--no-compile]
                                   [--record PATH] [--update-readme PATH]

CPU and wall ms per step and training tokens per second (of wall time, and of CPU time,
which other work on the machine disturbs less) of `tensor` and of `torch` in float64 and
float32, eager and compiled, at microgpt's shape and at 2 layers x 256, one name and 32
names per step. Every model is built and warmed up first (compiling included), then R
rounds interleave them (`microgpt.tools.timing.interleave`), each timing a few steps of
every row; figures are medians of the rounds (`microgpt.tools.report.torch_engine_rows`).
Each stage sets its own threads: `tensor` its BLAS threads by the size of its largest
product (`microgpt.stages._arrays.threads_for`), `torch` one thread up to width 64 and all
the cores above.

`--record PATH` writes the table into that benchmark record as its `torch_engines` section
(the rest of the record as it was); `--update-readme PATH` renders it between the README's
`<!-- torch-engines:start -->` and `<!-- torch-engines:end -->` markers.
Tokens are the real target tokens of the names trained on (about 7 per name).
"""

import argparse
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from microgpt import files, stages  # noqa: E402
from microgpt.config import GPTConfig  # noqa: E402
from microgpt.data import load_dataset  # noqa: E402
from microgpt.tools import report  # noqa: E402
from microgpt.tools.timing import SETTLE_S, interleave  # noqa: E402
from microgpt.train import Run  # noqa: E402

SHAPES = {"1x16": GPTConfig(), "2x256": GPTConfig(n_layer=2, n_embd=256, n_head=4)}
BATCHES = (1, 32)
COMPILED = (False, True)
WARMUP = 3  # steps each model trains before any timing (a compiler's first call among them)


def chunk_steps(cfg, batch):
    """Steps a round times of one row: a few tens of milliseconds of work or more."""
    small = cfg.n_embd <= 64
    return (40 if batch == 1 else 8) if small else (8 if batch == 1 else 2)


class Cell:
    """One model training on and on (a long schedule: the learning rate barely moves)."""

    def __init__(self, docs, cfg, batch, stage, options):
        self.cfg, self.batch = cfg, batch
        self.chunk = chunk_steps(cfg, batch)
        self.run = Run(docs, stages.load(stage), cfg=cfg, options=options)
        self.steps = self.run.train(10**9, None if batch == 1 else batch)
        self.done = 0

    def tokens(self, step):
        docs = self.run.docs
        names = [docs[(step * self.batch + i) % len(docs)] for i in range(self.batch)]
        return sum(self.cfg.positions(len(self.run.tokenizer.encode(n))) for n in names)

    def advance(self, steps):
        """Train `steps` steps: their CPU and wall seconds and target tokens, per step."""
        tokens = sum(self.tokens(self.done + i) for i in range(steps))
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(steps):
            next(self.steps)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        self.done += steps
        return {"cpu_s": cpu / steps, "wall_s": wall / steps, "tokens": tokens / steps}


def variants(compiled):
    found = [("tensor", "tensor", None)]
    for dtype in ("float64", "float32"):
        for compile in compiled:
            label = f"torch {dtype}{' compiled' if compile else ''}"
            found.append((label, "torch", {"device": "cpu", "dtype": dtype, "compile": compile}))
    return found


def build(docs, compiled, log):
    """{label: (row description, warmed-up Cell)} of every row, in table order."""
    cells = {}
    for cfg in SHAPES.values():
        for batch in BATCHES:
            for engine, stage, options in variants(compiled):
                began = time.perf_counter()
                cell = Cell(docs, cfg, batch, stage, options)
                cell.advance(WARMUP)
                shape = [cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size]
                label = f"{cfg.n_layer}x{cfg.n_embd} B={batch} {engine}"
                log(f"built {label} ({time.perf_counter() - began:.1f} s)")
                cells[label] = ({"shape": shape, "batch": batch, "engine": engine}, cell)
    return cells


def measure(docs, rounds, compiled, log):
    """The section's rows: every row's rounds, interleaved, then their medians."""
    cells = build(docs, compiled, log)
    results = interleave(
        {label: cell for label, (_, cell) in cells.items()},
        rounds,
        lambda cell: cell.advance(cell.chunk),
        after_round=lambda r, _: log(f"round {r + 1} / {rounds}"),
        settle_s=SETTLE_S,
    )
    return report.torch_engine_rows({label: row for label, (row, _) in cells.items()}, results)


def section(command, rounds, rows, load):
    import torch

    return {
        "command": command,
        "python": report.python_description(),
        "torch": torch.__version__,
        "machine": report.machine_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load": load,
        "rounds": rounds,
        "warmup": WARMUP,
        "settle_s": SETTLE_S,
        "timers": {"wall": "time.perf_counter", "cpu": "time.process_time"},
        "rows": rows,
    }


def write(args, found):
    """The section into the record (the rest as it was) and the README's table."""
    table = report.render_torch_engines(found)
    if args.record:
        record = report.read_record(args.record) | {"torch_engines": found}
        files.write_atomic(args.record, report.record_bytes(record))
    if args.update_readme:
        readme = report.read_text(args.update_readme, "a README")
        text = report.replace_between_markers(readme, table, args.update_readme, report.TE_MARKERS)
        files.write_atomic(args.update_readme, text.encode("utf-8"))
    print(table, end="")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="names file (default: as the command line finds it)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument("--record", help="the benchmark record to put the section into")
    parser.add_argument("--update-readme", help="a README with the torch-engines markers")
    args = parser.parse_args(argv)
    try:  # both files checked before the minutes of measuring
        if args.record:
            report.read_record(args.record)
        if args.update_readme:
            text = report.read_text(args.update_readme, "a README")
            report.between_markers(text, args.update_readme, report.TE_MARKERS)
    except report.BenchError as e:
        parser.error(str(e))

    def log(message):
        print(message, file=sys.stderr, flush=True)

    load_start = report.load_average()
    compiled = (False,) if args.no_compile else COMPILED
    rows = measure(load_dataset(args.data).docs, args.rounds, compiled, log)
    load = {"start": load_start, "end": report.load_average(), "cpus": os.cpu_count()}
    command = shlex.join(["python", "benchmarks/torch_cpu.py", *argv])
    write(args, section(command, args.rounds, rows, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
