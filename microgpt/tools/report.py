"""The benchmark's report: the record (one JSON file) and its renderings.

A report is what `python -m microgpt bench` measured, as data: the command, the
machine, the method, and per stage the medians, rounds, spread, speed-ups and
estimates. `--record PATH` writes it as the benchmark of record, which the README's
table (`render_markdown`) and the book's figures are rendered from; `read_record`
reads one back, checked enough to render. Every table is rendered from a report, so
no figure is typed by hand.
"""

import datetime
import io
import json
import os
import platform
import statistics
import sysconfig
from pathlib import Path

from .. import stages
from ..errors import single_line
from ..files import parse_json, read_capped
from ..memory import estimate
from .timing import (
    CHUNK_STEPS,
    FULL_SAMPLES,
    FULL_STEPS,
    ROUND_BUDGET_S,
    SAMPLE_BUDGET_S,
    SCALE_BUDGET_S,
    SCALE_HEADS,
    SCALE_WARMUP_STEPS,
    SETTLE_S,
    WARMUP_SAMPLES,
    WARMUP_STEPS,
    BenchError,
    full_run_scale,
    overlap,
    spread,
    window_ms,
    windows_of,
)

RECORD_PATH = Path(__file__).resolve().parent / "record.json"  # `make readme-table` writes it
RECORD_FORMAT = 2  # bump when the record's keys change meaning
# the formats `read_record` reads: 1 has no scale section, 2 may have one
READ_FORMATS = (1, 2)
MAX_TEXT_BYTES = 16 * 2**20  # a record or a README: far larger than either ever is
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
SCALE_START = "<!-- scale:start -->"  # the scale table's markers
SCALE_END = "<!-- scale:end -->"
MEMORY_NOTE = (
    "peak RSS of one subprocess per stage: the warm-up's steps, one step on the longest name, "
    "sampling"
)
NOISE_MARK = "~"  # before a speed-up whose two stages' rounds overlap


# ---------------------------------------------------------------------------------------
# the report of a measurement


def summarize(results, docs, num_steps):
    """Result rows with speed-ups and full-run estimates, as they go into the record.

    The speed-ups of record are ratios of CPU time (`cpu_speedup_*`): CPU time adds up
    every thread's, so a threaded stage looks slower than it is, but no stage in the
    chain has threads, and it moves far less than wall time when the machine is busy.
    """
    baseline = next((r for r in results if r.name == "baseline"), None)
    scale = full_run_scale(docs, num_steps)
    rows, previous = [], None
    for r in results:
        ms, cpu_ms, sample_ms = r.ms_per_step, r.cpu_ms_per_step, r.sample_ms_per_name
        compared = baseline is not None and r is not baseline
        rows.append(
            {
                "name": r.name,
                "summary": stages.BY_NAME[r.name].summary,
                "previous": previous.name if previous else None,  # what "vs previous" is vs
                "ms_per_step": ms,
                "cpu_ms_per_step": cpu_ms,
                "spread": spread(r.cpu_ms_per_step_rounds),
                "wall_spread": spread(r.ms_per_step_rounds),
                "cpu_speedup_vs_baseline": baseline.cpu_ms_per_step / cpu_ms if baseline else None,
                "cpu_speedup_vs_previous": previous.cpu_ms_per_step / cpu_ms if previous else None,
                "noise_vs_baseline": (
                    overlap(r.cpu_ms_per_step_rounds, baseline.cpu_ms_per_step_rounds)
                    if compared
                    else None
                ),
                "noise_vs_previous": (
                    overlap(r.cpu_ms_per_step_rounds, previous.cpu_ms_per_step_rounds)
                    if previous
                    else None
                ),
                "speedup_vs_baseline": baseline.ms_per_step / ms if baseline else None,
                "speedup_vs_previous": previous.ms_per_step / ms if previous else None,
                "sample_ms_per_name": sample_ms,
                "peak_mib": r.peak_mib,
                # what a quiet machine takes: CPU time, with sampling's wall time
                "est_full_run_s": cpu_ms * scale * FULL_STEPS / 1000
                + (sample_ms or 0) * FULL_SAMPLES / 1000,
                "ms_per_step_rounds": r.ms_per_step_rounds,
                "cpu_ms_per_step_rounds": r.cpu_ms_per_step_rounds,
                "sample_ms_rounds": r.sample_ms_rounds,
                "wall_chunk_rounds": r.wall_chunk_rounds,
                "cpu_chunk_rounds": r.cpu_chunk_rounds,
            }
            | collector_figures(r, baseline, previous)
            | window_figures(r, baseline, num_steps)
        )
        previous = r
    return rows


def ratio(a, b):
    return a / b if a is not None and b else None


def collector_figures(r, baseline, previous):
    """The row's figures with the collector off during the steps (none where the rounds
    did not time them): its CPU ms per step, the collector's share of the step, and the
    speed-ups over the same stages, also off. A pass's credit with the collector off is
    what the pass does to the stage's own work."""
    off = r.cpu_ms_per_step_off
    if off is None:
        return {}
    rounds = r.cpu_ms_per_step_off_rounds
    compared = baseline is not None and r is not baseline
    return {
        "cpu_ms_per_step_off": off,
        "collector_share": 1 - off / r.cpu_ms_per_step,
        "cpu_speedup_vs_baseline_off": ratio(baseline and baseline.cpu_ms_per_step_off, off),
        "cpu_speedup_vs_previous_off": ratio(previous and previous.cpu_ms_per_step_off, off),
        "noise_vs_baseline_off": (
            overlap(rounds, baseline.cpu_ms_per_step_off_rounds) if compared else None
        ),
        "noise_vs_previous_off": (
            overlap(rounds, previous.cpu_ms_per_step_off_rounds) if previous else None
        ),
        "off_wall_chunk_rounds": r.off_wall_chunk_rounds,
        "off_cpu_chunk_rounds": r.off_cpu_chunk_rounds,
    }


def window_figures(r, baseline, num_steps):
    """The speed-up over the baseline in each window of steps 1-w (`windows_of`), with
    the collector running and off: a ratio that holds for a whole run holds in each."""
    if baseline is None or not r.cpu_chunk_rounds:
        return {}
    windows = {}
    for w in windows_of(num_steps):
        figures = {}
        for key, chunks, base in (
            ("on", r.cpu_chunk_rounds, baseline.cpu_chunk_rounds),
            ("off", r.off_cpu_chunk_rounds, baseline.off_cpu_chunk_rounds),
        ):
            if chunks and base:
                figures[key] = window_ms(base, num_steps, w) / window_ms(chunks, num_steps, w)
        windows[str(w)] = figures
    return {"cpu_speedup_vs_baseline_by_window": windows}


def new_report(command, settings, dataset, load, left_out, results):
    """The report of a measurement: `settings` has the steps, repeat and samples; `load`
    the load averages at the start and the end; `results` the `StageResult`s."""
    steps, samples = settings["steps"], settings["samples"]
    report = {
        "record_format": RECORD_FORMAT,
        "command": command,
        "python": python_description(),
        "machine": machine_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load": load,
        "steps": steps,
        "repeat": settings["repeat"],
        "samples": samples,
        "chunk_steps": CHUNK_STEPS,
        "warmup": {"steps": min(steps, WARMUP_STEPS), "samples": min(samples, WARMUP_SAMPLES)},
        "round_budget_s": ROUND_BUDGET_S,
        "sample_budget_s": SAMPLE_BUDGET_S,
        "timers": {"wall": "time.perf_counter", "cpu": "time.process_time"},
        "data": dataset.source,
        "fallback": dataset.is_fallback,
        "full_run_steps": FULL_STEPS,
        "memory": MEMORY_NOTE,
        "left_out": left_out,
        "stages": summarize(results, dataset.docs, steps),
    }
    return json.loads(record_bytes(report))  # exactly what the record holds


def load_average():
    """The 1-minute load average, or None where the system has none (Windows, Pyodide)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_description():
    cpus = os.cpu_count()
    processor = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs ({processor})"


def python_description():
    gil = "free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else "with GIL"
    return f"{platform.python_implementation()} {platform.python_version()} ({gil})"


# ---------------------------------------------------------------------------------------
# renderings: every table is rendered from a report, and the record is a report


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def fmt_ms(value):
    return fmt(value, ".3g" if (value or 0) < 1 else ".1f")


def fmt_seconds(value):
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def fmt_speedup(value, noise=False):
    """`27.2x`; `~1.0x` when the two stages' rounds overlap (within the noise)."""
    if value is None:
        return "-"
    mark = NOISE_MARK if noise else ""
    return f"{mark}{value:.0f}x" if value >= 100 else f"{mark}{value:.1f}x"


def fmt_percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


TABLE_COLUMNS = (
    "stage",
    "ms/step",
    "CPU ms/step",
    "spread",
    "vs baseline",
    "vs previous",
    "sample ms/name",
    "peak RSS MiB",
    "est. 1000 steps",
)


def table_cells(row):
    """The row's cells as the tables show them, in `TABLE_COLUMNS` order."""
    return (
        row["name"],
        fmt_ms(row["ms_per_step"]),
        fmt_ms(row["cpu_ms_per_step"]),
        fmt_percent(row["spread"]),
        fmt_speedup(row["cpu_speedup_vs_baseline"], row["noise_vs_baseline"]),
        fmt_speedup(row["cpu_speedup_vs_previous"], row["noise_vs_previous"]),
        fmt_ms(row["sample_ms_per_name"]),
        fmt(row["peak_mib"], ".1f"),
        fmt_seconds(row["est_full_run_s"]),
    )


def method_note(report):
    """How the figures were measured, from the report itself (a record renders its own)."""
    chunk = report.get("chunk_steps")
    chunks = f" ({chunk}-step chunks)" if chunk and report["steps"] > chunk else ""
    sampling = f"sampling {report['samples']} names" if report["samples"] else "no sampling"
    return (
        f"median of {report['repeat']} interleaved rounds{chunks}, each training steps "
        f"1-{report['steps']} of the seed-42 run from scratch; speed-ups are ratios of CPU "
        f"time, {NOISE_MARK} where the middle halves of the two stages' rounds overlap (within "
        "the noise); spread: interquartile range / median of the rounds' CPU time; "
        f"{sampling}; {report.get('memory', MEMORY_NOTE)}"
    )


def context_note(report):
    """Python, machine, load and date: what a figure was measured on and when."""
    load = report.get("load") or {}
    busy = ""
    if load.get("start") is not None and load.get("end") is not None:
        busy = f", load average {load['start']:.1f} at the start and {load['end']:.1f} at the end"
    names = " (on the built-in fallback names, not makemore's)" if report.get("fallback") else ""
    return f"{report['python']} on {report['machine']}{busy}, {report['date']}{names}"


def left_out_note(report):
    """The stages the report does not measure, each with why."""
    items = report.get("left_out") or []
    return "; ".join(f"`{item['name']}` {item['reason']}" for item in items)


def text_table(columns, rows):
    """The lines of a table for a terminal: the first column to the left, the numbers to
    the right, a rule under the header."""
    cells = [columns, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = []
    for k, c in enumerate(cells):
        first = c[0].ljust(widths[0])
        lines.append("  ".join([first] + [x.rjust(w) for x, w in zip(c[1:], widths[1:])]))
        if k == 0:
            lines.append("-" * len(lines[0]))
    return lines


def markdown_table(columns, rows, rule=None):
    """The lines of a Markdown table; `rule` aligns the columns (default: the first to
    the left, the others to the right)."""
    rule = rule or "|" + "|".join([":---"] + ["---:"] * (len(columns) - 1)) + "|"
    return ["| " + " | ".join(columns) + " |", rule] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


WINDOW_AGREEMENT = 0.10  # ratios of different windows within this of each other agree


def collector_columns(report):
    """The second table's columns; the windows' only where a baseline was measured."""
    windows = next((list(window_figures_of(r)) for r in collector_rows(report)), [])
    last = [f"vs baseline over {' / '.join(windows)} steps"] if windows else []
    return (
        "stage",
        "CPU ms/step",
        "collector off",
        "collector's share",
        "vs baseline",
        "vs baseline, off",
        "vs previous",
        "vs previous, off",
        *last,
    )


def collector_rows(report):
    """The rows that have figures with the collector off (none in an older record)."""
    return [row for row in report["stages"] if "cpu_ms_per_step_off" in row]


def window_figures_of(row):
    """{window: {"on": speed-up, "off": speed-up}}; empty without a baseline."""
    return row.get("cpu_speedup_vs_baseline_by_window") or {}


def window_speedups(row, key="on"):
    return [w.get(key) for w in window_figures_of(row).values()]


def window_disagreement(row, key="on"):
    """How far the row's windows' speed-ups lie apart: largest / smallest - 1."""
    speedups = [x for x in window_speedups(row, key) if x]
    return max(speedups) / min(speedups) - 1 if speedups else 0.0


def collector_cells(row):
    """The row's cells in `collector_columns` order."""
    return (
        row["name"],
        fmt_ms(row["cpu_ms_per_step"]),
        fmt_ms(row["cpu_ms_per_step_off"]),
        fmt_percent(row["collector_share"]),
        fmt_speedup(row["cpu_speedup_vs_baseline"], row["noise_vs_baseline"]),
        fmt_speedup(row["cpu_speedup_vs_baseline_off"], row["noise_vs_baseline_off"]),
        fmt_speedup(row["cpu_speedup_vs_previous"], row["noise_vs_previous"]),
        fmt_speedup(row["cpu_speedup_vs_previous_off"], row["noise_vs_previous_off"]),
        *(
            [" / ".join(fmt_speedup(x) for x in window_speedups(row))]
            if window_figures_of(row)
            else []
        ),
    )


def collector_note(report):
    """What the second table shows, and whether its windows agree."""
    rows = collector_rows(report)
    apart = [r for r in rows if window_disagreement(r) > WINDOW_AGREEMENT]
    limit = fmt_percent(WINDOW_AGREEMENT)
    agreement = (
        f"the windows' speed-ups agree within {limit} for every stage"
        if not apart
        else "the windows' speed-ups differ by more than "
        f"{limit} for {', '.join(r['name'] for r in apart)}: the range is the figure"
    )
    return (
        "the same rounds' steps timed again with the collector off during the steps: "
        "collector's share = 1 - off / on; vs baseline over a window: CPU time of steps "
        f"1 to that step (medians per chunk); {agreement}"
    )


def render_text(report):
    """The tables for a terminal: the stages, then with the collector on and off."""
    lines = text_table(TABLE_COLUMNS, [table_cells(row) for row in report["stages"]])
    if collector_rows(report):
        lines.append("")
        rows = [collector_cells(row) for row in collector_rows(report)]
        lines += text_table(collector_columns(report), rows)
    lines.append("")
    lines.append(context_note(report))
    lines.append(method_note(report))
    if collector_rows(report):
        lines.append(collector_note(report))
    if left_out_note(report):
        lines.append(f"not measured: {left_out_note(report)}")
    return "\n".join(lines) + "\n"


def render_collector_markdown(report):
    """The second table for the README: every stage with the collector on and off."""
    rows = [[f"`{row['name']}`", *collector_cells(row)[1:]] for row in collector_rows(report)]
    lines = markdown_table(collector_columns(report), rows)
    return lines + ["", f"With the collector off: {collector_note(report)}."]


def render_markdown(report):
    """The table for the README, with the command that made it: the record's rendering."""
    rows = []
    for row in report["stages"]:
        cells = list(table_cells(row))
        cells[0] = f"`{cells[0]}`"
        rows.append(cells + [row["summary"]])
    rule = "|" + "|".join([":---"] + ["---:"] * (len(TABLE_COLUMNS) - 1)) + "|:---|"
    lines = markdown_table([*TABLE_COLUMNS, "what the pass changes"], rows, rule)
    lines += ["", f"Generated by `{report['command']}`: {method_note(report)}."]
    lines.append(f"{context_note(report)}.")
    if left_out_note(report):
        lines.append(f"Not measured: {left_out_note(report)}.")
    if collector_rows(report):
        lines += ["", *render_collector_markdown(report)]
    return "\n".join(lines) + "\n"


def between_markers(text, where, markers=(README_START, README_END)):
    """(start, end) of the text between the markers (the stage table's, or the scale
    table's: `SCALE_START`, `SCALE_END`), or a `BenchError`."""
    opening, closing = markers
    start = text.find(opening)
    end = text.find(closing, start + len(opening)) if start >= 0 else -1
    if end < 0:
        raise BenchError(
            f"{where}: no {opening} ... {closing} markers; add them where the table goes"
        )
    return start + len(opening), end


def replace_between_markers(text, table, where, markers=(README_START, README_END)):
    """`text` with the part between the markers replaced by `table`; the rest as it was."""
    start, end = between_markers(text, where, markers)
    return text[:start] + "\n" + table + text[end:]


def table_in(text, where, markers=(README_START, README_END)):
    """The table between the markers of `text`, as `replace_between_markers` put it."""
    start, end = between_markers(text, where, markers)
    return text[start:end].removeprefix("\n")


# ---------------------------------------------------------------------------------------
# the scale section: larger shapes and batches (`bench --scale`)

SCALE_MEMORY_NOTE = (
    "peak RSS of one subprocess per cell: making the model, two steps on the batch of the "
    "longest names"
)


def scale_cells_summary(results, modules, vocab_size):
    """The scale section's rows, as they go into the record."""
    rows = []
    for r in results:
        cell = r.cell
        kind = getattr(modules[cell.stage].Model, "memory_kind", None)
        need = estimate(kind, cell.cfg, vocab_size, cell.batch_size) if kind else None
        rows.append(
            {
                "name": cell.label,
                "stage": cell.stage,
                "n_layer": cell.n_layer,
                "n_embd": cell.n_embd,
                "n_head": SCALE_HEADS,
                "batch_size": cell.batch_size,
                "blas_threads": cell.blas_threads,
                "ms_per_step": r.median(0),
                "cpu_ms_per_step": r.median(1),
                "tokens_per_s": r.median(2),
                "spread": spread([x[0] for x in r.rounds]),
                "peak_mib": r.peak_mib,
                "estimate_mib": need.total / 2**20 if need else None,
                "rounds": r.rounds,
            }
        )
    return rows


def new_scale_section(command, repeat, dataset, load, results, modules, vocab_size):
    """The record's scale section: what `bench --scale` measured, and on what."""
    section = {
        "command": command,
        "python": python_description(),
        "machine": machine_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load": load,
        "repeat": repeat,
        "round_budget_s": SCALE_BUDGET_S,
        "settle_s": SETTLE_S,
        "warmup_steps": SCALE_WARMUP_STEPS,
        "timers": {"wall": "time.perf_counter", "cpu": "time.process_time"},
        "data": dataset.source,
        "fallback": dataset.is_fallback,
        "memory": SCALE_MEMORY_NOTE,
        "cells": scale_cells_summary(results, modules, vocab_size),
    }
    return json.loads(json.dumps(section))  # exactly what the record holds


SCALE_COLUMNS = ("stage", "layers x width", "batch", "BLAS threads", "ms/step", "CPU ms/step")
SCALE_COLUMNS += ("tokens/s", "spread", "peak RSS MiB")


def fmt_tokens(value):
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def scale_cells_row(cell):
    """A scale cell as the tables show it, in `SCALE_COLUMNS` order."""
    return (
        cell["stage"],
        f"{cell['n_layer']} x {cell['n_embd']}",
        str(cell["batch_size"]),
        fmt(cell["blas_threads"], "d"),
        fmt_ms(cell["ms_per_step"]),
        fmt_ms(cell["cpu_ms_per_step"]),
        fmt_tokens(cell["tokens_per_s"]),
        fmt_percent(cell["spread"]),
        fmt(cell["peak_mib"], ".1f"),
    )


def settled(section):
    """The untimed wait before each cell, as the section's note says it (older records
    have none)."""
    if not section.get("settle_s"):
        return ""
    return f" after {section['settle_s']:g} s untimed, for the last cell's BLAS threads to sleep"


def scale_method_note(section):
    """How the scale figures were measured, from the section itself."""
    budget = section.get("round_budget_s", SCALE_BUDGET_S)
    return (
        f"median of {section['repeat']} interleaved rounds, each cell training on for "
        f"{budget:g} s (one step at least) from step 1 of the seed-42 order{settled(section)}, "
        f"{SCALE_HEADS} heads, block 16; tokens/s: positions trained on (each predicting the next "
        "token) per second of wall time; CPU ms/step adds every thread's time; spread: "
        "interquartile range / median of the rounds' ms/step; BLAS threads held at 1 or 2 "
        "for the stages whose products go through numpy's BLAS (-: the stage's own choice, "
        "compiled loops in jit, PyTorch's threads by width in torch); "
        f"{section.get('memory', SCALE_MEMORY_NOTE)}"
    )


def render_scale_text(section):
    """The scale table for a terminal."""
    lines = text_table(SCALE_COLUMNS, [scale_cells_row(c) for c in section["cells"]])
    lines += ["", context_note(section), scale_method_note(section)]
    return "\n".join(lines) + "\n"


def render_scale_markdown(section):
    """The README's scale table, with the command that made it."""
    rows = [[f"`{c['stage']}`", *scale_cells_row(c)[1:]] for c in section["cells"]]
    lines = markdown_table(SCALE_COLUMNS, rows)
    lines += ["", f"Generated by `{section['command']}`: {scale_method_note(section)}."]
    lines.append(f"{context_note(section)}.")
    return "\n".join(lines) + "\n"


# what `--plot` can write, by the name's suffix: matplotlib's formats that need nothing more
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}


def plot_format(path):
    """The format of a chart saved as `path`, from its suffix; None for another suffix."""
    return PLOT_FORMATS.get(Path(path).suffix.lower())


def render_plot(report, fmt="png"):
    """The bytes of a bar chart of CPU ms/step per stage (log scale, speed-ups on the
    bars) in format `fmt` (`PLOT_FORMATS`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["stages"]
    fig, ax = plt.subplots(figsize=(1.1 * len(rows) + 2, 4))
    bars = ax.bar([r["name"] for r in rows], [r["cpu_ms_per_step"] for r in rows], color="#4c72b0")
    ax.set_yscale("log")
    ax.set_ylabel("CPU ms per training step (log scale)")
    ax.set_title(f"microgpt stages: median of {report['repeat']} rounds, {report['python']}")
    for bar, r in zip(bars, rows):
        label = fmt_speedup(r["cpu_speedup_vs_baseline"], r["noise_vs_baseline"])
        ax.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format=fmt, dpi=120)
    plt.close(fig)
    return out.getvalue()


# ---------------------------------------------------------------------------------------
# the record: one JSON file, written by --record, read by --from-record and the book

RECORD_KEYS = ("record_format", "command", "python", "machine", "date", "steps", "repeat")
RECORD_KEYS += ("samples", "stages")
ROW_KEYS = ("name", "summary", "ms_per_step", "cpu_ms_per_step", "spread")
ROW_KEYS += ("cpu_speedup_vs_baseline", "cpu_speedup_vs_previous", "noise_vs_baseline")
ROW_KEYS += ("noise_vs_previous", "sample_ms_per_name", "peak_mib", "est_full_run_s")


def read_text(path, kind):
    """The UTF-8 text of `path`, or a `BenchError` saying why not (the caller names the flag)."""
    raw = read_capped(path, MAX_TEXT_BYTES, BenchError, kind)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None


def read_record(path):
    """The record at `path`, checked enough to render, or a `BenchError` saying why not."""
    text = read_text(path, "a benchmark record")
    try:
        record = parse_json(text)
    except (ValueError, RecursionError) as e:
        raise BenchError(f"{path}: not JSON ({e})") from None
    again = "; make a new one with: make readme-table"
    if not isinstance(record, dict) or record.get("record_format") not in READ_FORMATS:
        formats = " or ".join(map(str, READ_FORMATS))
        raise BenchError(f"{path}: not a benchmark record of format {formats}{again}")
    missing = [key for key in RECORD_KEYS if key not in record]
    rows = record.get("stages")
    if not missing and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
        missing = ["stages"]
    for row in rows if not missing else []:
        missing += [f"stages/{row.get('name', '?')}/{key}" for key in ROW_KEYS if key not in row]
    if missing:
        raise BenchError(f"{path}: the record has no {missing[0]!r}{again}")
    if "data_parallel" in record:
        check_data_parallel(record["data_parallel"], path)
    if "torch_engines" in record:
        check_torch_engines(record["torch_engines"], path)
    scale = record.get("scale")
    if scale is not None:
        missing = [f"scale/{key}" for key in SCALE_KEYS if key not in scale]
        cells = scale.get("cells")
        if not missing and not (
            isinstance(cells, list) and all(isinstance(c, dict) for c in cells)
        ):
            missing = ["scale/cells"]
        for cell in cells if not missing else []:
            missing += [f"scale/{cell.get('name', '?')}/{k}" for k in CELL_KEYS if k not in cell]
        if missing:
            raise BenchError(f"{path}: the record has no {missing[0]!r}; make scale-table")
    try:  # a value of the wrong type (a hand edit): found here, before any file is written
        render_markdown(record)
        render_text(record)
        if scale is not None:
            render_scale_markdown(scale)
            render_scale_text(scale)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        problem = single_line(f"{type(e).__name__}: {e}")
        raise BenchError(f"{path}: the record cannot be rendered ({problem}){again}") from None
    return record


SCALE_KEYS = ("command", "python", "machine", "date", "repeat", "cells")
CELL_KEYS = ("name", "stage", "n_layer", "n_embd", "batch_size", "blas_threads", "ms_per_step")
CELL_KEYS += ("cpu_ms_per_step", "tokens_per_s", "spread", "peak_mib")


def record_bytes(report):
    """The record as its file holds it."""
    return (json.dumps(report, indent=2) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------
# the data-parallel section: tokens per second of one process and of several, written into
# the record beside the stages by `python -m microgpt bench --data-parallel`

DP_MARKERS = ("<!-- data-parallel:start -->", "<!-- data-parallel:end -->")
DP_KEYS = ("command", "python", "torch", "machine", "date", "repeat", "warmup", "names_per_step")
DP_KEYS += ("backend", "rows")
DP_ROW_KEYS = ("width", "shape", "processes", "threads", "steps", "ms_per_step", "tokens_per_s")
DP_ROW_KEYS += ("spread", "cpu_busy", "speedup_vs_one", "noise_vs_one")
DP_COLUMNS = ("width", "model", "processes x threads", "ms/step", "tokens/s", "spread")
DP_COLUMNS += ("vs 1 x 1", "CPU cores busy")


def data_parallel_round(worker):
    """The figures of one round, from process 0's report (`microgpt.tools.parallel_run`):
    the timed steps' tokens over their wall seconds, their mean wall ms per step, and every
    process's CPU seconds over those wall seconds (how many cores the run kept busy)."""
    wall = sum(worker["wall_s"])
    return {
        "tokens_per_s": sum(worker["tokens"]) / wall,
        "ms_per_step": 1000 * wall / len(worker["wall_s"]),
        "cpu_busy": worker["cpu_all_s"] / wall,
    }


def data_parallel_rows(cases, rounds):
    """Rows of the section: per case (a dict of width, shape, processes, threads, steps;
    `rounds[label]` its rounds' `data_parallel_round`s) the medians, the spread of tokens/s,
    and tokens/s over the one process of one thread at the same width (a case each width has)."""
    rows = []
    for label, case in cases.items():
        figures = rounds[label]
        per_s = [r["tokens_per_s"] for r in figures]
        rows.append(
            {
                **case,
                "ms_per_step": statistics.median(r["ms_per_step"] for r in figures),
                "tokens_per_s": statistics.median(per_s),
                "spread": spread(per_s),
                "cpu_busy": statistics.median(r["cpu_busy"] for r in figures),
                "tokens_per_s_rounds": per_s,
                "ms_per_step_rounds": [r["ms_per_step"] for r in figures],
                "cpu_busy_rounds": [r["cpu_busy"] for r in figures],
            }
        )
    for row in rows:
        one = next(
            r for r in rows if (r["width"], r["processes"], r["threads"]) == (row["width"], 1, 1)
        )
        row["speedup_vs_one"] = row["tokens_per_s"] / one["tokens_per_s"]
        row["noise_vs_one"] = (
            None if row is one else overlap(row["tokens_per_s_rounds"], one["tokens_per_s_rounds"])
        )
    return rows


def new_data_parallel_section(command, settings, dataset, load, torch_version, rows):
    """The section as the record holds it: `settings` has repeat, warmup, names_per_step."""
    section = {
        "command": command,
        "python": python_description(),
        "torch": torch_version,
        "machine": machine_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load": load,
        **settings,
        "backend": "gloo",
        "timers": {"wall": "time.perf_counter", "cpu": "time.process_time"},
        "data": dataset.source,
        "fallback": dataset.is_fallback,
        "rows": rows,
    }
    return json.loads(json.dumps(section))


def shape_words(shape):
    n_layer, _, n_head = shape[:3]
    return f"{n_layer} layer{'s' if n_layer > 1 else ''}, {n_head} heads"


def data_parallel_cells(row):
    return (
        str(row["width"]),
        shape_words(row["shape"]),
        f"{row['processes']} x {row['threads']}",
        fmt_ms(row["ms_per_step"]),
        f"{row['tokens_per_s']:,.0f}",
        fmt_percent(row["spread"]),
        fmt_speedup(row["speedup_vs_one"], row["noise_vs_one"]),
        f"{row['cpu_busy']:.2f}",
    )


def data_parallel_note(section):
    """How the section was measured, from the section itself."""
    n = section["names_per_step"]
    return (
        f"median of {section['repeat']} interleaved rounds, each a fresh launch (several "
        f"processes: torchrun, DistributedDataParallel on {section['backend']}) that trains "
        f"{section['warmup']} warm-up steps of the seed-42 run, then times the next ones, "
        f"{n} names per step in all (each of N processes its {n}/N); wall-clock time; tokens: "
        "the real target tokens trained on; spread: interquartile range / median of the "
        "rounds' tokens/s; vs 1 x 1: tokens/s over one process of one thread at that width, "
        f"{NOISE_MARK} where the middle halves of their rounds overlap (within the noise); CPU "
        "cores busy: every process's CPU seconds over the wall seconds of the timed steps"
    )


def data_parallel_context(section):
    """`context_note` with the PyTorch version the runs used."""
    return f"PyTorch {section['torch']}, {context_note(section)}"


def render_data_parallel(section):
    """The data-parallel table for the README and the terminal, with the command that made it."""
    rule = "|---:|:---|:---|" + "---:|" * (len(DP_COLUMNS) - 3)
    lines = markdown_table(DP_COLUMNS, map(data_parallel_cells, section["rows"]), rule)
    lines += ["", f"Generated by `{section['command']}`: {data_parallel_note(section)}."]
    lines.append(f"{data_parallel_context(section)}.")
    return "\n".join(lines) + "\n"


def check_section(section, path, key, keys, row_keys, render, target):
    """A `BenchError` unless the record's section `key` (with `keys`, and `rows` of
    `row_keys`) has what `render` renders from; the message names `make target`."""
    again = f"; make a new one with: make {target}"
    missing = [] if isinstance(section, dict) else [key]
    missing += [f"{key}/{k}" for k in keys if not missing and k not in section]
    rows = [] if missing else section["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        missing, rows = [f"{key}/rows"], []
    for row in rows:
        missing += [f"{key}/rows/{k}" for k in row_keys if k not in row]
    if missing:
        raise BenchError(f"{path}: the record has no {missing[0]!r}{again}")
    try:
        render(section)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        problem = single_line(f"{type(e).__name__}: {e}")
        raise BenchError(f"{path}: the record cannot be rendered ({problem}){again}") from None


def check_data_parallel(section, path):
    """A `BenchError` unless the record's data-parallel section has what it renders from."""
    check_section(
        section,
        path,
        "data_parallel",
        DP_KEYS,
        DP_ROW_KEYS,
        render_data_parallel,
        "readme-data-parallel",
    )


# ---------------------------------------------------------------------------------------
# the torch-engines section: `tensor` beside the `torch` stage (float64, float32, eager and
# compiled) at two shapes and two batch sizes, by `benchmarks/torch_cpu.py --record`

TE_MARKERS = ("<!-- torch-engines:start -->", "<!-- torch-engines:end -->")
TE_KEYS = ("command", "python", "torch", "machine", "date", "rounds", "warmup", "rows")
TE_ROW_KEYS = ("shape", "batch", "engine", "cpu_ms_per_step", "ms_per_step", "tokens_per_s")
TE_ROW_KEYS += ("tokens_per_cpu_s", "spread", "cpu_vs_tensor", "noise_vs_tensor")
TE_COLUMNS = ("model", "names/step", "engine", "CPU ms/step", "ms/step", "tokens/s")
TE_COLUMNS += ("tokens per CPU s", "spread", "CPU time vs tensor")


def torch_engine_rows(cells, rounds):
    """Rows of the section: per cell ({label: {shape, batch, engine}}; `rounds[label]` its
    rounds' per-step {cpu_s, wall_s, tokens}) the medians over the rounds, the spread of CPU
    time, and CPU time over `tensor`'s at the same shape and batch (the first cell of each)."""
    rows = []
    for label, cell in cells.items():
        found = rounds[label]
        cpu = [r["cpu_s"] for r in found]
        rows.append(
            {
                **cell,
                "cpu_ms_per_step": 1000 * statistics.median(cpu),
                "ms_per_step": 1000 * statistics.median(r["wall_s"] for r in found),
                "tokens_per_s": statistics.median(r["tokens"] / r["wall_s"] for r in found),
                "tokens_per_cpu_s": statistics.median(r["tokens"] / r["cpu_s"] for r in found),
                "spread": spread(cpu),
                "cpu_s_rounds": cpu,
            }
        )
    for row in rows:
        base = next(
            r
            for r in rows
            if (r["shape"], r["batch"], r["engine"]) == (row["shape"], row["batch"], "tensor")
        )
        row["cpu_vs_tensor"] = row["cpu_ms_per_step"] / base["cpu_ms_per_step"]
        row["noise_vs_tensor"] = (
            None if row is base else overlap(row["cpu_s_rounds"], base["cpu_s_rounds"])
        )
    return rows


def torch_engine_cells(row):
    n_layer, n_embd = row["shape"][:2]
    noise = NOISE_MARK if row["noise_vs_tensor"] else ""
    return (
        f"{n_layer} x {n_embd}",
        str(row["batch"]),
        row["engine"],
        fmt_ms(row["cpu_ms_per_step"]),
        fmt_ms(row["ms_per_step"]),
        f"{row['tokens_per_s']:,.0f}",
        f"{row['tokens_per_cpu_s']:,.0f}",
        fmt_percent(row["spread"]),
        f"{noise}{row['cpu_vs_tensor']:.2f}x",
    )


def render_torch_engines(section):
    """The torch-engines table for the README and the terminal, with the command that made it."""
    rule = "|:---|---:|:---|" + "---:|" * (len(TE_COLUMNS) - 3)
    lines = markdown_table(TE_COLUMNS, map(torch_engine_cells, section["rows"]), rule)
    note = (
        f"median of {section['rounds']} interleaved rounds (every model built and warmed up "
        f"first, {section['warmup']} steps, compiling included; then each round times every "
        f"row in turn, a few steps each{settled(section)}); tokens: the real target tokens "
        "trained on; spread: interquartile range / median of the rounds' CPU time; "
        "CPU time vs tensor: over "
        f"`tensor`'s at the same model and batch, {NOISE_MARK} where the middle halves of "
        "their rounds overlap (within the noise); threads: `tensor` one BLAS thread while its "
        "largest product is small and one per idle core from 2**24 multiply-adds on (32 names "
        "at width 256), `torch` one thread up to width 64 and every core above"
    )
    load = section.get("load") or {}
    busy = ""
    if load.get("start") is not None and load.get("end") is not None:
        busy = f", load average {load['start']:.1f} at the start and {load['end']:.1f} at the end"
    lines += ["", f"Generated by `{section['command']}`: {note}."]
    lines.append(
        f"PyTorch {section['torch']}, {section['python']} on {section['machine']}{busy}, "
        f"{section['date']}."
    )
    return "\n".join(lines) + "\n"


def check_torch_engines(section, path):
    """A `BenchError` unless the record's torch-engines section has what it renders from."""
    check_section(
        section,
        path,
        "torch_engines",
        TE_KEYS,
        TE_ROW_KEYS,
        render_torch_engines,
        "readme-torch-engines",
    )


# every section another command writes into the record: its markers in a README, its table
SECTIONS = {
    "scale": ((SCALE_START, SCALE_END), render_scale_markdown),
    "data_parallel": (DP_MARKERS, render_data_parallel),
    "torch_engines": (TE_MARKERS, render_torch_engines),
}
