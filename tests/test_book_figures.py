"""Every figure the book's prose quotes is the one its own outputs (or the benchmark of
record) show; a measured-looking number in prose without a mark is a failure too."""

import re
from pathlib import Path

import nbformat
import pytest
from helpers import MEASURED

from microgpt.book import chapters, figures

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = chapters(BOOK)
# marks of a number that is not this book's measurement: from a linked source, or given
EXEMPT = re.compile(r"\S+?<!--(?:cited|given)-->")
CODE = re.compile(r"`[^`]*`|\]\([^)]*\)|<[^>]*>")  # code spans, link targets, HTML tags


def prose(nb):
    return [cell.source for cell in nb.cells if cell.cell_type == "markdown"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_marked_figure_is_what_the_chapter_quotes(path):
    nb = nbformat.read(path, as_version=4)
    texts, _ = figures.quoted(nb)
    for source in prose(nb):
        for text, name in figures.MARKED.findall(source):
            assert name in texts, f"{path.name}: the prose marks fig:{name}; no output quotes it"
            assert figures.bare(text) == texts[name], (
                f"{path.name}: the prose says {text} where fig:{name} is {texts[name]}"
            )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_figures_from_the_record_are_the_current_record(path):
    texts, sources = figures.quoted(nbformat.read(path, as_version=4))
    for name, (stage, field) in sources.items():
        now = figures.format_figure(figures.record_row(stage)[field], field)
        assert texts[name] == now, (
            f"{path.name}: fig:{name} shows {texts[name]}, the record now says {now}; "
            "re-run the chapter"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_measured_number_in_prose_goes_unmarked(path):
    for source in prose(nbformat.read(path, as_version=4)):
        rest = EXEMPT.sub(" ", figures.MARKED.sub(" ", source))
        unmarked = MEASURED.findall(CODE.sub(" ", rest))
        assert not unmarked, f"{path.name}: figures in prose without a mark: {unmarked}"


def test_the_checks_catch_a_wrong_figure(tmp_path):
    """The checks above can fail: a prose figure that disagrees, and one left unmarked."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("quote(speedup='1.6x')")
    meta = {figures.METADATA_KEY: {"figures": {"speedup": "1.6x"}, "record": {}}}
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/plain": "x"}, metadata=meta)]
    nb.cells = [cell, nbformat.v4.new_markdown_cell("It is **1.7x**<!--fig:speedup--> faster.")]
    texts, _ = figures.quoted(nb)
    ((text, name),) = figures.MARKED.findall(prose(nb)[0])
    assert texts[name] == "1.6x" and figures.bare(text) == "1.7x"
    assert MEASURED.findall("took 12.5 ms and 3 s, 40% of it") == ["12.5 ms", "3 s", "40%"]
    assert not MEASURED.findall("16 dimensions, 4 heads, 1000 steps, 2 cores, v1.5")


def test_sync_writes_the_quoted_figure_into_the_prose_and_keeps_its_markdown():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("quote(speedup='1.6x')")
    meta = {figures.METADATA_KEY: {"figures": {"speedup": "1.6x"}, "record": {}}}
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/plain": "x"}, metadata=meta)]
    nb.cells = [
        cell,
        nbformat.v4.new_markdown_cell("now **1.7x**<!--fig:speedup--> and 2x<!--fig:gone-->"),
    ]
    assert figures.sync_prose(nb) == [("speedup", "1.7x", "1.6x")]
    assert nb.cells[1].source == "now **1.6x**<!--fig:speedup--> and 2x<!--fig:gone-->"
    assert figures.sync_prose(nb) == []
