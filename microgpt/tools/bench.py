"""`python -m microgpt bench`: every stage timed side by side, in one process.

The command: its flags, their checks, and the files it writes. The measuring is
`microgpt.tools.timing` (interleaved rounds, medians, peak memory: its docstring says
how and why); the record and its tables are `microgpt.tools.report`.
`--record PATH` writes the benchmark of record; the README's table is its rendering,
and `--from-record PATH` renders a record again without measuring. `--data-parallel`
measures PyTorch's data-parallel runs instead (`bench_data_parallel`), into a section of
the record of their own.
"""

import argparse
import os
import shlex
import tempfile
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

from .. import files, stages
from ..config import GPTConfig
from ..data import load_dataset
from ..errors import os_problem, to_stderr
from . import parallel_run
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
from .timing import (
    FULL_STEPS,
    BenchError,
    default_stages,
    interleave,
    left_out_stages,
    load_modules,
    run_bench,
    run_scale,
    scale_cells,
    scale_stages,
)

DEFAULT_STEPS = 30
DEFAULT_REPEAT = 3
DEFAULT_SAMPLES = 20
DEFAULT_SCALE_REPEAT = 5


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


def plot_file(text):
    """A flag type for --plot: an output path whose suffix names a format matplotlib writes."""
    output_file(text)  # first: a folder or a missing path is that, whatever its suffix
    if reports.plot_format(text) is None:
        suffixes = ", ".join(reports.PLOT_FORMATS)
        raise argparse.ArgumentTypeError(
            f"{shown_path(text)}: the chart's format comes from the name's suffix: {suffixes}"
        )
    return text


def shown_path(text):
    return text if len(text) <= 60 else text[:57] + "..."


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
    p.add_argument(
        "--scale",
        action="store_true",
        help="measure larger shapes and batches instead (widths 16 to 512, batches 1 and 32) "
        "for the stages that take them; --record adds the scale section to a record",
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
        (
            "--plot",
            plot_file,
            f"write a bar chart here, as the suffix says ({', '.join(reports.PLOT_FORMATS)}; "
            "needs matplotlib)",
        ),
    ]
    for flag, checked_as, help_text in file_flags:
        p.add_argument(flag, metavar="PATH", type=checked_as, help=help_text)
    p.add_argument(
        "--data-parallel",
        action="store_true",
        help="measure PyTorch's data-parallel runs instead of the stages (1 and 2 processes, "
        "widths 16 and 256); --record puts them into that existing record",
    )
    return p


MEASURING_FLAGS = {"--stages": "stages", "--steps": "steps", "--repeat": "repeat"}
MEASURING_FLAGS |= {"--samples": "samples", "--data": "data"}


def check_flags(args, parser):
    """Measuring flags mean nothing to --from-record; elsewhere their defaults fill in."""
    if args.from_record:
        given = [flag for flag, key in MEASURING_FLAGS.items() if getattr(args, key) is not None]
        given += ["--data-parallel"] if args.data_parallel else []
        if given:
            parser.error(f"--from-record measures nothing; {given[0]} does not go with it")
    if args.scale and args.data_parallel:
        parser.error("--scale and --data-parallel measure different things; give one")
    if args.data_parallel:
        check_data_parallel_flags(args, parser)
    if args.scale:
        check_scale_flags(args, parser)
    args.steps = DEFAULT_STEPS if args.steps is None else args.steps
    default_repeat = DEFAULT_REPEAT
    if args.data_parallel:
        default_repeat = DP_REPEAT
    elif args.scale:
        default_repeat = DEFAULT_SCALE_REPEAT
    args.repeat = default_repeat if args.repeat is None else args.repeat
    args.samples = DEFAULT_SAMPLES if args.samples is None else args.samples


def check_scale_flags(args, parser):
    """--scale times each cell for a budget and samples nothing; it measures the stages
    that take larger shapes (the registry's `scales`)."""
    given = [
        flag
        for flag, key in (("--steps", "steps"), ("--samples", "samples"), ("--plot", "plot"))
        if getattr(args, key) is not None
    ]
    if given:
        parser.error(f"--scale times each cell for a fixed time; {given[0]} does not go with it")
    scaling = [s.name for s in stages.STAGES if s.scales]
    other = [name for name in args.stages or [] if name not in scaling]
    if other:
        parser.error(
            f"--scale measures the stages that take larger shapes ({', '.join(scaling)}), "
            f"not {other[0]}"
        )
    if args.record and not args.from_record:
        try:
            reports.read_record(args.record)
        except BenchError as e:
            parser.error(
                f"--record {e.args[0].split(': ', 1)[0]}: --scale adds its section to an "
                "existing record; write one first (make readme-table)"
            )


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
            reports.between_markers(readme, args.update_readme, markers_of(args))
        except BenchError as e:
            parser.error(f"--update-readme {e}")


def markers_of(args):
    """The README markers of the table the command writes."""
    if args.scale:
        return reports.SCALE_START, reports.SCALE_END
    if args.data_parallel:
        return reports.DP_MARKERS
    return reports.README_START, reports.README_END


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
    if args.scale:
        if report.get("scale") is None:
            raise BenchError("the record has no scale section; make one with: make scale-table")
        markdown = reports.render_scale_markdown(report["scale"])
        text = reports.render_scale_text(report["scale"])
    else:
        markdown = reports.render_markdown(report)
        text = reports.render_text(report)
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
        updated = reports.replace_between_markers(readme, markdown, path, markers_of(args))
        updated = with_section_tables(updated, report, path)
        outputs.append(("--update-readme", path, updated.encode("utf-8")))
    if args.plot:
        chart = reports.render_plot(report, reports.plot_format(args.plot))
        outputs.append(("--plot", args.plot, chart))
    for flag, path, data in outputs:
        write_output(flag, path, data)
    Output()(text, end="")  # last: the files are written if stdout is closed


@contextmanager
def names_copy(docs):
    """The path of a temporary copy of `docs`, one name per line, removed afterwards; a
    temporary folder that cannot take it (full, unwritable) is a `BenchError` naming it."""
    tmp = None
    try:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "names.txt"
        path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    except OSError as e:
        folder = os.path.dirname(tmp.name) if tmp is not None else "the temporary folder"
        if tmp is not None:
            tmp.cleanup()
        raise BenchError(
            f"the benchmark's temporary copy of the names cannot be written in {folder}: "
            f"{os_problem(e)}, or point TMPDIR at another folder"
        ) from None
    with tmp:
        yield path


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
    with names_copy(dataset.docs) as data_path:  # the memory subprocesses read the same names
        results = run_bench(
            modules, dataset.docs, args.steps, args.repeat, args.samples, data_path, log, left_out
        )
    load = {"start": load_start, "end": reports.load_average(), "cpus": os.cpu_count()}
    command = f"python -m microgpt bench {shlex.join(argv)}".rstrip()
    settings = {"steps": args.steps, "repeat": args.repeat, "samples": args.samples}
    report = reports.new_report(command, settings, dataset, load, left_out or [], results)
    report |= other_sections(args.record)
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


def scale_bench(args, argv, log):
    """Measure the scale grid, print its table, write the files; returns the record
    (the record at --record with the new scale section, or the section alone)."""
    names = args.stages or scale_stages()
    modules = load_modules(names)
    if not modules:
        raise BenchError("no stage that takes larger shapes can run here (pip install numpy)")
    dataset = load_dataset(args.data)
    load_start = reports.load_average()
    cells = scale_cells(list(modules))
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "names.txt"  # the memory subprocesses read the very same names
        data_path.write_text("\n".join(dataset.docs) + "\n", encoding="utf-8")
        results = run_scale(modules, dataset.docs, cells, args.repeat, data_path, log)
    load = {"start": load_start, "end": reports.load_average(), "cpus": os.cpu_count()}
    command = f"python -m microgpt bench {shlex.join(argv)}".rstrip()
    vocab_size = len(set("".join(dataset.docs))) + 1
    section = reports.new_scale_section(
        command, args.repeat, dataset, load, results, modules, vocab_size
    )
    record = reports.read_record(args.record) if args.record else {}
    record["scale"] = section
    if args.record:
        record["record_format"] = reports.RECORD_FORMAT
    write_reports(args, record)
    return record


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

        if args.data_parallel:
            bench_data_parallel(args, argv, to_stderr)
            return
        if not args.from_record:
            measure_with = scale_bench if args.scale else bench
            measure_with(args, argv, to_stderr)
            return
        try:
            record = reports.read_record(args.from_record)
        except BenchError as e:  # exit 1, as a bad checkpoint for --load
            raise BenchError(f"--from-record {e}") from None
        write_reports(args, record)

    return run_command("microgpt bench", measure)


# ---------------------------------------------------------------------------------------
# --data-parallel: tokens per second of one process and of two, in a section of the record

DP_REPEAT = 5  # rounds, unless --repeat says otherwise
DP_WARMUP = 3  # steps each launch trains before it times any
DP_NAMES_PER_STEP = 32  # in all: each of N processes trains 32 / N names per step
DP_PROCESSES = 2
DP_WIDTHS = {  # width: (the model, steps timed per launch: about a second of work)
    16: (GPTConfig(), 40),
    256: (GPTConfig(n_layer=2, n_embd=256, n_head=4), 10),
}
DP_SECTION_FLAGS = {"--stages": "stages", "--steps": "steps", "--samples": "samples"}
DP_SECTION_FLAGS |= {"--plot": "plot"}


def check_data_parallel_flags(args, parser):
    """--data-parallel measures runs, not stages; it needs PyTorch; its --record must be a
    record already (the section goes into it, the stages' figures stay)."""
    given = [flag for flag, key in DP_SECTION_FLAGS.items() if getattr(args, key) is not None]
    if given:
        parser.error(
            f"--data-parallel times PyTorch's runs, not stages; {given[0]} does not go with it"
        )
    if find_spec("torch") is None:
        parser.error("--data-parallel needs PyTorch; install it with: pip install -e '.[torch]'")
    if args.record:
        try:
            reports.read_record(args.record)
        except BenchError as e:
            parser.error(f"--record with --data-parallel puts the section into a record: {e}")


def data_parallel_cases():
    """{label: case} of every run measured: at each width one process of one thread and
    DP_PROCESSES processes of one thread each; where the stage gives a width more than one
    thread (wider than 64), one process with every core's thread too."""
    cpus = os.cpu_count() or 1
    cases = {}
    for width, (cfg, steps) in DP_WIDTHS.items():
        runs = [(1, 1)] + ([(1, cpus)] if width > 64 and cpus > 1 else []) + [(DP_PROCESSES, 1)]
        for processes, threads in runs:
            shape = [cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size]
            case = {"width": width, "shape": shape, "processes": processes, "threads": threads}
            cases[f"width {width}, {processes} x {threads}"] = case | {"steps": steps}
    return cases


def time_data_parallel(cases, data_path, rounds, log):
    """{label: [process 0's report of each round]}: the cases' launches, interleaved."""

    def measure(case):
        args = ["--data", str(data_path), "--steps", str(case["steps"])]
        args += ["--warmup", str(DP_WARMUP), "--shape", ",".join(map(str, case["shape"]))]
        args += ["--batch-size", str(DP_NAMES_PER_STEP // case["processes"])]
        worker = parallel_run.launch(case["processes"], case["threads"], args)
        if worker["threads"] != case["threads"]:
            raise BenchError(f"a run meant for {case['threads']} threads used {worker['threads']}")
        return worker

    def progress(r, results):
        done = ", ".join(
            f"{label} {reports.data_parallel_round(found[-1])['tokens_per_s']:,.0f}"
            for label, found in results.items()
        )
        log(f"round {r + 1}/{rounds} (tokens/s): {done}")

    return interleave(cases, rounds, measure, after_round=progress)


def bench_data_parallel(args, argv, log):
    """Measure the data-parallel runs, print their table, write the files; returns the section."""
    repeat = args.repeat
    dataset = load_dataset(args.data)
    cases = data_parallel_cases()
    load_start = reports.load_average()
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "names.txt"  # every launch reads the very same names
        data_path.write_text("\n".join(dataset.docs) + "\n", encoding="utf-8")
        workers = time_data_parallel(cases, data_path, repeat, log)
    load = {"start": load_start, "end": reports.load_average(), "cpus": os.cpu_count()}
    rounds = {
        label: [reports.data_parallel_round(w) for w in found] for label, found in workers.items()
    }
    rows = reports.data_parallel_rows(cases, rounds)
    settings = {"repeat": repeat, "warmup": DP_WARMUP, "names_per_step": DP_NAMES_PER_STEP}
    command = f"python -m microgpt bench {shlex.join(argv)}".rstrip()
    torch_version = next(iter(workers.values()))[0]["torch"]
    section = reports.new_data_parallel_section(
        command, settings, dataset, load, torch_version, rows
    )
    write_data_parallel(args, section)
    return section


def write_data_parallel(args, section):
    """The section into the record (the rest of it as it was), the README's table between its
    markers, --markdown and --json (the section alone), then the table on stdout."""
    table = reports.render_data_parallel(section)
    outputs = []
    if args.record:
        record = reports.read_record(args.record) | {"data_parallel": section}
        outputs.append(("--record", args.record, reports.record_bytes(record)))
    if args.json:
        outputs.append(("--json", args.json, reports.record_bytes(section)))
    if args.markdown:
        outputs.append(("--markdown", args.markdown, table.encode("utf-8")))
    if args.update_readme:
        path = args.update_readme
        readme = reports.read_text(path, "a README")
        text = reports.replace_between_markers(readme, table, path, reports.DP_MARKERS)
        outputs.append(("--update-readme", path, text.encode("utf-8")))
    for flag, path, data in outputs:
        write_output(flag, path, data)
    Output()(table, end="")


def other_sections(record_path):
    """The sections of the record at `record_path` that other measurements wrote (the
    data-parallel runs', the torch engines'): a new measurement of the stages keeps them.
    None where there is no readable record."""
    if not record_path or not Path(record_path).is_file():
        return {}
    try:
        record = reports.read_record(record_path)
    except BenchError:
        return {}
    return {key: record[key] for key in reports.SECTIONS if key in record}


def with_section_tables(text, report, where):
    """`text` with the table of each of the record's other sections rendered from `report`,
    where both the report has the section and the text its markers."""
    for key, (markers, render) in reports.SECTIONS.items():
        if key not in report:
            continue
        try:
            reports.between_markers(text, where, markers)
        except BenchError:
            continue
        text = reports.replace_between_markers(text, render(report[key]), where, markers)
    return text


__all__ = ["main"]
