"""Figures the prose quotes, kept true: a chapter shows each measured figure with `quote`,
and its prose marks the figure where it quotes it, `1.6x<!--fig:name-->`.

`tests/test_book_figures.py` reads every chapter: each marked figure must be the one
the chapter's stored outputs quote under that name, figures taken from the benchmark
of record must be the record's current ones, and a measured-looking number in prose
(a speed-up, a time, a percentage, a size) must carry a mark, or `<!--cited-->` when it
comes from a linked source. The mark is an HTML comment: JupyterLab, the HTML book and
the browser site show the prose without it.
"""

import re

from ..arguments import ArgumentError, checked, instance, optional, shown, whole
from ..arguments import text as a_str
from ..tools.report import RECORD_PATH, read_record
from .checks import notebook
from .notebook import in_notebook

METADATA_KEY = "microgpt_figures"  # where a quoted figure is stored in the notebook
# a figure in prose and its mark: `1.6x<!--fig:name-->`, `**54**<!--fig:nodes-->`
MARKED = re.compile(r"(\S+?)<!--fig:(\w+)-->")
WRAPPING = "*_("  # markdown around a figure: `**1.6x**`, `(54`


def quote(**figures):
    """Show `name = text` for each figure (texts as the prose writes them: `"1.6x"`, `"54"`)
    and store them in the cell's output for the check."""
    show({name: str(text) for name, text in figures.items()}, {})


def record():
    """The benchmark of record (`make readme-table` writes it)."""
    return read_record(RECORD_PATH)


def a_record(value, label):
    """A benchmark record as `record()` reads it: its stages' rows and its scale cells,
    each with a name."""
    rec = value if isinstance(value, dict) else {}
    scale = rec.get("scale") or {}
    cells = scale.get("cells", []) if isinstance(scale, dict) else None
    for rows in (rec.get("stages"), cells):
        if not isinstance(rows, list) or not all(
            isinstance(row, dict) and isinstance(row.get("name"), str) for row in rows
        ):
            raise ArgumentError(
                f"{label} must be a benchmark record (figures.record()), not {shown(value)}"
            )
    return value


@checked(rec=optional(a_record))
def record_rows(rec=None):
    """{name: row} of the record: the stages' rows, and the scale section's cells, named
    as `tensor 2x256 B32, 1 BLAS` (`timing.ScaleCell.label`)."""
    rec = record() if rec is None else rec
    rows = {row["name"]: row for row in rec["stages"]}
    rows |= {cell["name"]: cell for cell in (rec.get("scale") or {}).get("cells", [])}
    return rows


def record_row(stage):
    """The record's row of `stage` (or of a scale cell, by its name)."""
    rows = record_rows()
    if not isinstance(stage, str) or stage not in rows:
        raise ArgumentError(
            f"record_row: the record has no stage {shown(stage)}; it has: {', '.join(rows)}"
        )
    return rows[stage]


def a_number(value, label):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentError(f"{label} must be a number, not {shown(value)}")
    return value


def _figure(row, field, label):
    """The number `row[field]` of a record's row, or an `ArgumentError` naming the fields
    that hold one."""
    value = row.get(field) if isinstance(field, str) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        fields = [k for k, v in row.items() if type(v) in (int, float)]  # not bools
        raise ArgumentError(
            f"{label}: the row has no number {shown(field)}; it has: {', '.join(fields)}"
        )
    return value


def _section_rows(name, label):
    """The rows of the record's `name` section (`data_parallel`, `torch_engines`)."""
    rec = record()
    if name not in rec:
        make = name.replace("_", "-")
        raise ArgumentError(
            f"{label}: the record has no {name} section; make it with: make readme-{make}"
        )
    return rec[name]["rows"]


def _parts(source, size, label, example):
    """`source` as a list of `size` parts, or an `ArgumentError` showing one."""
    if not isinstance(source, (list, tuple)) or len(source) != size:
        raise ArgumentError(f"{label} must be {example}, not {shown(source)}")
    return list(source)


@checked(value=a_number, field=a_str)
def format_figure(value, field):
    """A record's value as the prose writes it: speed-ups as `"21.4x"`, times in ms,
    tokens per second as `"4,180"`, shares as `"35%"`."""
    if field.startswith(("cpu_speedup", "speedup")):
        return f"{value:.3g}x" if value < 100 else f"{value:,.0f}x"
    if field == "tokens_per_s":
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    if field.endswith("_share"):
        return f"{100 * value:.0f}%"
    return f"{value:.3g}"


def quote_record(**figures):
    """Quote figures of the benchmark of record: name=(stage or scale cell, field) for each."""
    rows = record_rows()
    for name, source in figures.items():
        ok = isinstance(source, tuple) and len(source) == 2
        ok = ok and all(isinstance(part, str) for part in source)
        number = rows.get(source[0], {}).get(source[1]) if ok else None
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise ArgumentError(
                f"quote_record: {name} must be (stage, field) of a number in the record, "
                f'like ("flat", "cpu_speedup_vs_baseline"); not {shown(source)}'
            )
    texts = {
        name: format_figure(rows[stage][field], field) for name, (stage, field) in figures.items()
    }
    show(texts, {name: list(source) for name, source in figures.items()})


@checked(width=whole(1), processes=whole(1), threads=whole(1))
def data_parallel_row(width, processes, threads):
    """The row of the record's data-parallel section for that run."""
    rows = _section_rows("data_parallel", "data_parallel_row")
    runs = [(r["width"], r["processes"], r["threads"]) for r in rows]
    if (width, processes, threads) not in runs:
        raise ArgumentError(
            f"data_parallel_row: the record has no run ({width}, {processes}, {threads}); "
            f"it has (width, processes, threads): {', '.join(map(str, runs))}"
        )
    return rows[runs.index((width, processes, threads))]


def _quote_section(section, figures, row_of, formatter, example):
    """Quote figures of the record's `section`: name=(the row's keys..., field) for each."""
    label = f"quote_{section}"
    texts = {}
    for name, source in figures.items():
        *run, field = _parts(source, 4, f"{label}: {name}", example)
        texts[name] = formatter(_figure(row_of(*run), field, label), field)
    show(texts, {name: [section, *source] for name, source in figures.items()})


def quote_data_parallel(**figures):
    """Quote figures of the record's data-parallel section: name=(width, processes, threads,
    field) for each (`tokens_per_s`, `ms_per_step`, `speedup_vs_one`, `cpu_busy`)."""
    example = '(width, processes, threads, field), like (16, 2, 1, "speedup_vs_one")'
    _quote_section("data_parallel", figures, data_parallel_row, format_data_parallel, example)


@checked(value=a_number, field=a_str)
def format_data_parallel(value, field):
    """A data-parallel figure as the prose writes it: `1.6x`, `12,345` tokens/s, `7.3` ms."""
    if field == "speedup_vs_one":
        return f"{value:.2g}x"
    if field == "tokens_per_s":
        return f"{value:,.0f}"
    if field == "cpu_busy":
        return f"{value:.2f}"
    return f"{value:.3g}"


@checked(width=whole(1), batch=whole(1), engine=a_str)
def torch_engine_row(width, batch, engine):
    """The row of the record's torch-engines section for that model width, batch and engine."""
    rows = _section_rows("torch_engines", "torch_engine_row")
    runs = [(r["shape"][1], r["batch"], r["engine"]) for r in rows]
    if (width, batch, engine) not in runs:
        raise ArgumentError(
            f"torch_engine_row: the record has no run ({width}, {batch}, {engine!r}); "
            f"it has (width, batch, engine): {', '.join(map(str, runs))}"
        )
    return rows[runs.index((width, batch, engine))]


@checked(value=a_number, field=a_str)
def format_torch_engine(value, field):
    """A torch-engines figure as the prose writes it: `0.52x`, `12,345` tokens/s, `1.3` ms."""
    if field == "cpu_vs_tensor":
        return f"{value:.2f}x"
    if field.startswith("tokens"):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def quote_torch_engines(**figures):
    """Quote figures of the record's torch-engines section: name=(width, batch, engine,
    field) for each (`cpu_ms_per_step`, `tokens_per_s`, `tokens_per_cpu_s`, `cpu_vs_tensor`)."""
    example = '(width, batch, engine, field), like (16, 1, "torch float64", "cpu_vs_tensor")'
    _quote_section("torch_engines", figures, torch_engine_row, format_torch_engine, example)


SOURCES = (
    '[stage, field], ["data_parallel", width, processes, threads, field] or '
    '["torch_engines", width, batch, engine, field]'
)


def a_source(value, label):
    """Where a quote from the record comes from (`quoted` gives them): one of `SOURCES`."""
    section = value[0] if isinstance(value, (list, tuple)) and value else None
    size = 5 if section in ("data_parallel", "torch_engines") else 2
    return _parts(value, size, label, SOURCES)


@checked(source=a_source)
def record_figure(source):
    """The text a quote from the record shows now: source is [stage, field],
    ["data_parallel", width, processes, threads, field] or
    ["torch_engines", width, batch, engine, field]."""
    label = "record_figure"
    if source[0] == "data_parallel":
        width, processes, threads, field = source[1:]
        row = data_parallel_row(width, processes, threads)
        return format_data_parallel(_figure(row, field, label), field)
    if source[0] == "torch_engines":
        width, batch, engine, field = source[1:]
        row = torch_engine_row(width, batch, engine)
        return format_torch_engine(_figure(row, field, label), field)
    stage, field = source
    return format_figure(_figure(record_row(stage), field, label), field)


@checked(texts=instance(dict), sources=instance(dict))
def show(texts, sources):
    lines = "\n".join(f"{name} = {text}" for name, text in texts.items())
    if not in_notebook():
        print(lines)
        return
    from IPython.display import display

    metadata = {METADATA_KEY: {"figures": texts, "record": sources}}
    display({"text/plain": lines}, metadata=metadata, raw=True)


@checked(nb=notebook)
def quoted(nb):
    """({name: text}, {name: [stage, field]}) of every figure a notebook's outputs quote."""
    texts, sources = {}, {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            found = output.get("metadata", {}).get(METADATA_KEY)
            if found:
                texts.update(found["figures"])
                sources.update(found["record"])
    return texts, sources


@checked(text=a_str)
def bare(text):
    """A marked figure without the markdown around it."""
    return text.strip(WRAPPING)


@checked(nb=notebook)
def sync_prose(nb):
    """Write each marked figure of the prose as the outputs now quote it, so that
    re-running a chapter keeps its prose true; [(name, old, new)] of what changed."""
    texts, _ = quoted(nb)
    changed = []

    def now(match):
        text, name = match.groups()
        if name not in texts or bare(text) == texts[name]:
            return match.group(0)
        core = bare(text)
        start = text.index(core)
        changed.append((name, core, texts[name]))
        return f"{text[:start]}{texts[name]}{text[start + len(core) :]}<!--fig:{name}-->"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = MARKED.sub(now, cell.source)
    return changed
