"""`python -m microgpt`: train and print names, sample from a checkpoint, list stages.

User mistakes end in one line on stderr: exit code 2 for bad flags or values,
1 for a failure while running (bad data, a broken checkpoint, a diverged loss).
"""

import argparse
import math
import os
import random
import sys
from pathlib import Path

from . import checkpoint, stages
from .data import DataError, Tokenizer, load_dataset
from .profiling import profiled
from .train import INFERENCE_HEADER, Run, TrainingDiverged, format_sample, format_step, sample_names

COMMANDS = ("train", "sample", "stages", "bench")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag costs one line instead of usage plus error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def temperature(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number (0.5 is usual)")
    return value


def stage_name(text):
    if text not in stages.BY_NAME:
        raise argparse.ArgumentTypeError(
            f"unknown stage {text!r}; choose one of: {', '.join(stages.names())}"
        )
    return text


def add_sampling_flags(parser):
    parser.add_argument(
        "--samples", type=count, default=20, help="how many names to print (default 20)"
    )
    parser.add_argument(
        "--temperature",
        type=temperature,
        default=0.5,
        help="sampling temperature, > 0; lower is safer, higher is wilder (default 0.5)",
    )


def train_parser(prog):
    p = ArgumentParser(
        prog=prog,
        description="Train microgpt on a list of names, then print new names it invents.",
        epilog="Other commands: sample, stages, bench (each has --help).",
    )
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps (default 1000)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42, the original's)")
    p.add_argument(
        "--data",
        metavar="PATH",
        help="names file, one per line (default: $MICROGPT_DATA, ./input.txt, the cache, "
        "or a download of makemore's names.txt)",
    )
    p.add_argument(
        "--stage",
        type=stage_name,
        default=None,
        help=f"implementation to run, one of {', '.join(stages.names())} "
        "(default: the fastest available; see `stages`)",
    )
    p.add_argument("--save", metavar="PATH", help="write a JSON checkpoint here after training")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="names per step, padded and masked (stage tensor only; changes the algorithm)",
    )
    add_sampling_flags(p)
    return p


def sample_parser(prog):
    p = ArgumentParser(prog=prog, description="Print names sampled from a saved checkpoint.")
    p.add_argument("--load", metavar="PATH", required=True, help="checkpoint written by --save")
    p.add_argument("--seed", type=int, default=42, help="random seed for sampling (default 42)")
    p.add_argument(
        "--stage",
        type=stage_name,
        default=None,
        help="implementation to sample with (default: the fastest available)",
    )
    add_sampling_flags(p)
    return p


def check_writable(path):
    """Fail before training, not after, when --save points nowhere."""
    parent = Path(path).resolve().parent
    if Path(path).is_dir():
        raise checkpoint.CheckpointError(f"{path}: is a directory; give a file name to --save")
    if not parent.is_dir():
        raise checkpoint.CheckpointError(f"{path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise checkpoint.CheckpointError(f"{path}: folder {parent} is not writable")


def cmd_train(args):
    stage = args.stage or stages.default_name()
    if args.batch_size and stage != "tensor":
        train_parser("python -m microgpt").error(
            f"--batch-size needs --stage tensor (and numpy), not {stage}"
        )
    module = stages.load(stage)
    if args.save:
        check_writable(args.save)
    dataset = load_dataset(args.data)
    if dataset.source == "built-in fallback list":
        print(f"training on the {dataset.source} ({len(dataset.docs)} names)", file=sys.stderr)
    run = Run(dataset.docs, module, seed=args.seed)
    print(f"num docs: {len(run.docs)}")
    print(f"vocab size: {run.tokenizer.vocab_size}")
    print(f"num params: {run.model.num_params}")
    if args.batch_size:
        steps = module.train_batched(
            run.model, run.docs, run.tokenizer, args.steps, args.batch_size
        )
    else:
        steps = run.train(args.steps)
    for step, loss in steps:
        print(format_step(step, args.steps, loss), flush=step + 1 == args.steps)
    if args.save:
        checkpoint.save(args.save, run.model, run.tokenizer, stage, args.steps)
    print()
    print(INFERENCE_HEADER)
    for i, name in enumerate(run.sample(args.samples, args.temperature)):
        print(format_sample(i, name))


def cmd_sample(args):
    module = stages.load(args.stage or stages.default_name())
    cfg, chars, weights = checkpoint.load(args.load)
    tokenizer = Tokenizer(chars)
    model = module.Model(cfg, tokenizer.vocab_size, weights)
    rng = random.Random(args.seed)
    for i, name in enumerate(sample_names(model, tokenizer, rng, args.samples, args.temperature)):
        print(format_sample(i, name))


def cmd_stages(args):
    available = {stage.name for stage in stages.available()}
    default = stages.default_name()
    for stage in stages.STAGES:
        mark = "*" if stage.name == default else " "
        note = "" if stage.name in available else f"  (needs {' '.join(stage.requires)})"
        print(f"{mark} {stage.name:<18} {stage.summary}{note}")


def main(argv=None):
    """Entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    prog = f"python -m microgpt {command}"
    if command == "train":
        args = train_parser("python -m microgpt").parse_args(argv)
        action = cmd_train
    elif command == "sample":
        args = sample_parser(prog).parse_args(argv)
        action = cmd_sample
    elif command == "stages":
        ArgumentParser(
            prog=prog, description="List the stages, fastest available marked *."
        ).parse_args(argv)
        args, action = None, cmd_stages
    else:
        from .bench import bench_main

        return bench_main(argv, ArgumentParser)
    try:
        with profiled():
            action(args)
    except (
        DataError,
        checkpoint.CheckpointError,
        stages.StageError,
        TrainingDiverged,
    ) as e:
        print(f"microgpt: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("microgpt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m microgpt | head`
        sys.stderr.close()
        return 0
    return 0


def run():
    """Console-script entry point (`microgpt ...`)."""
    sys.exit(main())
