"""`python -m microgpt bench`: every stage timed side by side, in one process.

The command: its flags, their checks, and the files it writes. The measuring is
`microgpt.tools.timing` (interleaved rounds, medians, peak memory: its docstring says
how and why); the record and its tables are `microgpt.tools.report`.
`--record PATH` writes the benchmark of record; the README's table is its rendering,
and `--from-record PATH` renders a record again without measuring.
"""

import argparse
import os
import shlex
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from .. import files, stages
from ..data import load_dataset
from . import report as reports
from .args import (
    ArgumentParser,
    Output,
    check_distinct_paths,
    count,
    input_file,
    output_file,
    positive_int,
    run_command,
    whole_number,
)
from .timing import FULL_STEPS, BenchError, default_stages, left_out_stages, load_modules, run_bench

DEFAULT_STEPS = 30
DEFAULT_REPEAT = 3
DEFAULT_SAMPLES = 20


def parse_stage_list(text):
    """`a,b,c` -> stage names in pass order; argparse turns the errors into exit 2."""
    stage_names = [name.strip() for name in text.split(",") if name.strip()]
    if not stage_names:
        raise argparse.ArgumentTypeError("give at least one stage name, e.g. baseline,flat")
    unknown = [name for name in stage_names if name not in stages.BY_NAME]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown stage {unknown[0]!r}; choose from: {', '.join(stages.stage_names())}"
        )
    if len(set(stage_names)) != len(stage_names):
        raise argparse.ArgumentTypeError(f"{text!r} names a stage twice")
    order = stages.stage_names()
    return sorted(stage_names, key=order.index)


def bench_parser():
    p = ArgumentParser(
        prog="python -m microgpt bench",
        description="Time the stages side by side (interleaved rounds, medians) and print a table.",
    )
    p.add_argument(
        "--stages",
        type=parse_stage_list,
        default=None,
        metavar="A,B,...",
        help="stages to measure (default: every in-chain stage that can run here)",
    )
    p.add_argument(
        "--steps",
        type=whole_number(1, FULL_STEPS),
        help=f"training steps timed per stage, on the same names for all (default {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        help=f"interleaved rounds; figures are medians (default {DEFAULT_REPEAT})",
    )
    p.add_argument(
        "--samples",
        type=count,
        help=f"names sampled per timing (default {DEFAULT_SAMPLES}; 0 skips sampling)",
    )
    markers = f"{reports.README_START} and {reports.README_END}"
    file_flags = [  # (flag, checked as, help): every file flag takes a PATH
        ("--data", input_file, "names file (default: as for training)"),
        (
            "--record",
            output_file,
            "write the benchmark of record here (JSON; the README's table is its rendering)",
        ),
        (
            "--from-record",
            input_file,
            "measure nothing: render the tables and files from this record",
        ),
        ("--json", output_file, "write the results as JSON here"),
        ("--markdown", output_file, "write the markdown table here"),
        (
            "--update-readme",
            output_file,
            f"replace the table between {markers} in this file",
        ),
        ("--plot", output_file, "write a bar chart here (needs matplotlib)"),
    ]
    for flag, checked_as, help_text in file_flags:
        p.add_argument(flag, metavar="PATH", type=checked_as, help=help_text)
    return p


MEASURING_FLAGS = {"--stages": "stages", "--steps": "steps", "--repeat": "repeat"}
MEASURING_FLAGS |= {"--samples": "samples", "--data": "data"}


def check_flags(args, parser):
    """Measuring flags mean nothing to --from-record; elsewhere their defaults fill in."""
    if args.from_record:
        given = [flag for flag, key in MEASURING_FLAGS.items() if getattr(args, key) is not None]
        if given:
            parser.error(f"--from-record measures nothing; {given[0]} does not go with it")
    args.steps = DEFAULT_STEPS if args.steps is None else args.steps
    args.repeat = DEFAULT_REPEAT if args.repeat is None else args.repeat
    args.samples = DEFAULT_SAMPLES if args.samples is None else args.samples


def check_outputs(args, parser):
    """Catch unusable outputs before minutes of measuring, not after (paths: `output_file`)."""
    outputs = {
        "--record": args.record,
        "--json": args.json,
        "--markdown": args.markdown,
        "--plot": args.plot,
        "--update-readme": args.update_readme,
    }
    clash = check_distinct_paths(outputs, {"--data": args.data, "--from-record": args.from_record})
    if clash:
        parser.error(clash)
    if args.update_readme:
        try:
            readme = reports.read_text(args.update_readme, "a README")
            reports.between_markers(readme, args.update_readme)
        except BenchError as e:
            parser.error(f"--update-readme {e}")


def write_output(flag, path, data):
    try:
        files.write_atomic(path, data)
    except OSError as e:  # a full disk, a folder gone meanwhile: the old file is intact
        raise BenchError(f"{flag} {path}: not written ({e.strerror or e})") from None


def write_reports(args, report):
    """The files the flags ask for, then the table on stdout; all rendered from `report`.

    Everything is rendered before the first file is written, so a failure leaves every
    file as it was; each file is written whole or not at all (`files.write_atomic`).
    """
    markdown = reports.render_markdown(report)
    outputs = [
        (flag, path, reports.record_bytes(report))
        for flag, path in (("--record", args.record), ("--json", args.json))
        if path
    ]
    if args.markdown:
        outputs.append(("--markdown", args.markdown, markdown.encode("utf-8")))
    if args.update_readme:
        path = args.update_readme
        readme = reports.read_text(path, "a README")
        text = reports.replace_between_markers(readme, markdown, path)
        outputs.append(("--update-readme", path, text.encode("utf-8")))
    if args.plot:
        outputs.append(("--plot", args.plot, reports.render_plot(report)))
    text = reports.render_text(report)
    for flag, path, data in outputs:
        write_output(flag, path, data)
    Output()(text, end="")  # last: the files are written if stdout is closed


def bench(args, argv, log):
    """Measure, print the table, write the files; returns the report (the record).

    The stages named by --stages must all run; of the default ones, a stage that cannot
    (a missing package, a module being written) is left out and the record says why.
    """
    left_out = None if args.stages else left_out_stages()
    modules = load_modules(args.stages or default_stages(), left_out)
    for item in left_out or []:
        log(f"left out: {item['name']} {item['reason']}")
    if not modules:
        raise BenchError("no stage can run here; see the lines above for why")
    dataset = load_dataset(args.data)
    load_start = reports.load_average()
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "names.txt"  # the memory subprocesses read the very same names
        data_path.write_text("\n".join(dataset.docs) + "\n", encoding="utf-8")
        results = run_bench(
            modules, dataset.docs, args.steps, args.repeat, args.samples, data_path, log, left_out
        )
    load = {"start": load_start, "end": reports.load_average(), "cpus": os.cpu_count()}
    command = f"python -m microgpt bench {shlex.join(argv)}".rstrip()
    settings = {"steps": args.steps, "repeat": args.repeat, "samples": args.samples}
    report = reports.new_report(command, settings, dataset, load, left_out or [], results)
    if dataset.is_fallback:
        log("note: measured on the built-in fallback names; for the record, pass --data")
    busiest = max((x for x in (load["start"], load["end"]) if x is not None), default=0)
    if load["cpus"] and busiest > load["cpus"]:
        log(
            f"note: the machine was busy (load average {busiest:.1f} on {load['cpus']} CPUs): "
            "ratios shift under load; for the record, measure on a quiet machine"
        )
    write_reports(args, report)
    return report


def main(argv):
    """Entry point of `python -m microgpt bench`; returns the exit code."""
    argv = list(argv)
    parser = bench_parser()
    args = parser.parse_args(argv)
    check_flags(args, parser)
    check_outputs(args, parser)

    def measure():
        if args.plot and find_spec("matplotlib") is None:
            raise BenchError("--plot needs matplotlib; install it with: pip install matplotlib")
        if not args.from_record:
            bench(args, argv, lambda msg: print(msg, file=sys.stderr, flush=True))
            return
        try:
            record = reports.read_record(args.from_record)
        except BenchError as e:  # exit 1, as a bad checkpoint for --load
            raise BenchError(f"--from-record {e}") from None
        write_reports(args, record)

    return run_command("microgpt bench", measure)


__all__ = ["main"]
