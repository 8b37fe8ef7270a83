"""The `torch` stage on a CUDA GPU, in one short run (two minutes or so on a data-centre card).

    python benchmarks/gpu_check.py [--data PATH] [--quick]

1. float64 on the GPU equals the CPU: 30 steps of 8 names at microgpt's shape and at
   2 layers x 64, every loss within 1e-10 (cuBLAS sums in another order and the embedding's
   backward adds with atomics in no fixed order: rounding, nothing else; a wrong computation,
   or float32 anywhere, is off by 1e-7 or more). A failure makes the exit code 1.
2. Where the GPU overtakes the CPU: training tokens per second on each, float32, batches of
   32 and 64 names, widths 16 (microgpt's 1 layer) and 32 to 1024 (2 layers, 4 heads); the
   crossover is the narrowest width from which the GPU is faster at every larger width.
3. Tokens per second at 2 layers x 512, batch 64: the GPU in float64, float32 and bfloat16
   (and with torch.compile when --compile is given), the CPU in float32.

Each figure is the median of timed steps after warm-up steps, wall-clock (the GPU is
synchronised by every step's loss). The table is headed by the card's name, PyTorch's and
CUDA's versions and the CPU threads. Without CUDA it says so in one line and exits 0.

The names: --data, else $MICROGPT_DATA or the download cache, else the built-in list (no
download: a speed check needs names, not makemore's).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from microgpt import stages  # noqa: E402
from microgpt.config import GPTConfig  # noqa: E402
from microgpt.data import cache_path, cached_names, data_source, fallback_docs, read_names  # noqa: E402
from microgpt.train import Run  # noqa: E402

EQUAL_WITHIN = 1e-10
WIDTHS = (16, 32, 64, 128, 256, 512, 1024)
BATCHES = (32, 64)
LARGE, LARGE_BATCH = GPTConfig(n_layer=2, n_embd=512, n_head=4), 64  # section 3
GPU = "cuda"


def shape(width):
    """microgpt's model at width 16; 2 layers and 4 heads at every other width."""
    return GPTConfig() if width == 16 else GPTConfig(n_layer=2, n_embd=width, n_head=4)


def names(path):
    given = data_source(path)
    if given:
        return read_names(given[0], given[1]), given[0]
    cached = cache_path()
    docs = cached_names(cached) if cached else None
    return (docs, str(cached)) if docs else (fallback_docs(), "the built-in list")


def losses(docs, cfg, options, steps, batch_size):
    run = Run(docs, stages.load("torch"), cfg=cfg, options=options)
    return [loss for _, loss in run.train(steps, batch_size)]


def throughput(docs, cfg, batch_size, options, warmup=3, least=5, most=50, seconds=1.0):
    """(median ms per step, tokens per second) of training steps after `warmup` steps:
    at least `least` timed steps, more while they take under `seconds` in all."""
    run = Run(docs, stages.load("torch"), cfg=cfg, options=options)
    steps = run.train(10**9, batch_size)  # a long schedule: the learning rate barely moves
    for _ in range(warmup):
        next(steps)
    times, tokens = [], 0
    while len(times) < least or (len(times) < most and sum(times) < seconds):
        start = len(times) + warmup
        batch = [run.docs[(start * batch_size + i) % len(run.docs)] for i in range(batch_size)]
        tokens += sum(cfg.positions(len(run.tokenizer.encode(name))) for name in batch)
        began = time.perf_counter()
        next(steps)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3, tokens / sum(times)


def crossover(rows):
    """The narrowest width from which the GPU beats the CPU at every larger width, or None.
    `rows`: (width, cpu tokens/s, gpu tokens/s), in increasing width."""
    found = None
    for width, cpu, gpu in rows:
        if gpu > cpu:
            found = found or width
        else:
            found = None
    return found


def header(torch):
    card = torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    return (
        f"{card}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"CPU: {os.cpu_count()} cores, {threads} PyTorch threads"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", metavar="PATH", help="names file (default: see above)")
    parser.add_argument("--quick", action="store_true", help="widths up to 256, fewer steps")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_check: PyTorch is not installed (pip install -e '.[torch]'); nothing to check")
        return 0
    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else "no CUDA device is visible"
        print(
            f"gpu_check: no CUDA GPU here (PyTorch {torch.__version__}: {build}); nothing to check"
        )
        return 0
    docs, source = names(args.data)
    print(header(torch))
    print(f"names: {source} ({len(docs)})", flush=True)
    gpu, cpu = {"device": GPU}, {"device": "cpu"}
    failed = False

    print("\n1. float64, GPU against CPU, 30 steps of 8 names")
    for cfg in (GPTConfig(), GPTConfig(n_layer=2, n_embd=64, n_head=4)):
        on_cpu, on_gpu = (losses(docs, cfg, where, 30, 8) for where in (cpu, gpu))
        worst = max(abs(a - b) for a, b in zip(on_cpu, on_gpu))
        verdict = "equal" if worst <= EQUAL_WITHIN else f"NOT EQUAL (bound {EQUAL_WITHIN:g})"
        failed |= worst > EQUAL_WITHIN
        print(
            f"   {cfg.n_layer} layer(s) x {cfg.n_embd}: largest difference {worst:.2e}, {verdict}"
        )

    widths = [w for w in WIDTHS if w <= 256] if args.quick else WIDTHS
    print("\n2. float32 training tokens/s, CPU and GPU (ms/step in brackets)")
    print(f"   {'width':>5} {'batch':>5} {'CPU tokens/s':>20} {'GPU tokens/s':>20}  GPU/CPU")
    for batch_size in BATCHES:
        rows = []
        for width in widths:
            f32 = {"dtype": "float32"}
            c_ms, c_tps = throughput(docs, shape(width), batch_size, {**cpu, **f32})
            g_ms, g_tps = throughput(docs, shape(width), batch_size, {**gpu, **f32})
            rows.append((width, c_tps, g_tps))
            print(
                f"   {width:>5} {batch_size:>5} {c_tps:>10,.0f} ({c_ms:6.2f}) "
                f"{g_tps:>10,.0f} ({g_ms:6.2f})  {g_tps / c_tps:6.2f}x",
                flush=True,
            )
        at = crossover(rows)
        where = f"from width {at} on" if at else f"at no width from {widths[0]} to {widths[-1]}"
        print(f"   batch {batch_size}: the GPU overtakes the CPU {where}")

    cfg = LARGE
    size = f"{cfg.n_layer} layers x {cfg.n_embd}, batch {LARGE_BATCH}"
    print(f"\n3. {size}: training tokens/s (ms/step)")
    cells = [("GPU", {**gpu, "dtype": d}) for d in ("float64", "float32", "bfloat16")]
    if args.compile:
        cells.append(("GPU compiled", {**gpu, "dtype": "float32", "compile": True}))
    cells.append(("CPU", {**cpu, "dtype": "float32"}))
    for label, options in cells:
        ms, tps = throughput(docs, cfg, LARGE_BATCH, options)
        print(
            f"   {label:<13} {options['dtype']:<9} {tps:>12,.0f} tokens/s ({ms:.2f} ms)", flush=True
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
