"""The book: every chapter listed and present, stored executed in order without errors,
and the HTML book builds with an "open in the browser" link on every chapter page.

Whether the stored outputs are current is nbval's job (pytest --nbval book)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from add_lite_badges import add_badge, lite_url  # book/ is on pytest's pythonpath

from microgpt.book import chapters

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHAPTERS = chapters(BOOK)
NEEDS_CDN = re.compile(r"^\s*(import|from)\s+(numpy|matplotlib)\b", re.M)
CHECKERS = re.compile(r"microgpt\.book\.exercises|from\s+microgpt\.book\s+import\s+.*\bexercises")
TITLE = re.compile(r"^# (\d\d) · \S")  # `# 07 · Graph traversal: ...`
LINK = re.compile(r"\[[^\]]+\]\((?:https?://)[^)\s]+\)")  # a markdown link to the web
NBVAL_COMMENT = re.compile(r"#\s*NBVAL_")
IMPORTS = re.compile(r"^\s*(?:from\s+\S+\s+)?import\s+(?:\([^)]*\)|.*)$", re.M)
CHECK_CALL = re.compile(r"(?<![\w.])check_\w+\s*\(")  # an exercise calls its checker


def toc_files():
    """The `file:` entries of _toc.yml, in order (the format is simple enough for a regex)."""
    return re.findall(r"^\s*-?\s*file:\s*(\S+)", (ROOT / "_toc.yml").read_text(), re.M)


def load(path):
    return json.loads(path.read_text("utf-8"))


def code_cells(nb):
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def test_toc_lists_the_chapters_numbered_in_order_and_each_exists():
    files = toc_files()
    assert files[0] == "book/00_preface"
    assert "book/15_results" in files  # the results close part three; part four scales
    numbers = [int(Path(f).name[:2]) for f in files]
    assert numbers == list(range(len(files))), f"_toc.yml chapters: {files}"
    missing = [f for f in files if not (ROOT / f"{f}.ipynb").is_file()]
    assert not missing, f"listed in _toc.yml but not in book/: {missing}"


def test_every_chapter_notebook_is_in_the_toc():
    listed = {Path(f).name for f in toc_files()}
    unlisted = [p.name for p in CHAPTERS if p.stem not in listed]
    assert not unlisted, f"add these to _toc.yml: {unlisted}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_notebook_is_stored_executed_in_order_without_errors(path):
    cells = code_cells(load(path))
    counts = [cell["execution_count"] for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts {counts}; restart the kernel and run all cells "
        "(make notebooks)"
    )
    for i, cell in enumerate(cells, 1):
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{path.name}, cell [{i}]: stored an error"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (
                f"{path.name}, cell [{i}]: stderr output stored: {''.join(out['text'])[:200]}"
            )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_title_summary_exercises_and_a_checked_exercise(path):
    nb = load(path)
    markdown = [source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert markdown and markdown[0].lstrip().startswith("# "), f"{path.name}: no title first"
    text = "\n".join(markdown)
    assert "## Summary" in text, f"{path.name}: no Summary section"
    assert "## Exercises" in text, f"{path.name}: no Exercises section"
    assert any(CHECKERS.search(source(c)) for c in code_cells(nb)), (
        f"{path.name}: no exercise checked by a microgpt.book.exercises* checker"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_first_cell_is_the_title_numbered_as_the_file(path):
    first = load(path)["cells"][0]
    title = source(first).strip().splitlines()[0] if source(first).strip() else ""
    assert first["cell_type"] == "markdown" and TITLE.match(title), (
        f"{path.name}: the first cell should be a title `# {path.name[:2]} · Title`, not {title!r}"
    )
    assert TITLE.match(title)[1] == path.name[:2], (
        f"{path.name}: the title is numbered {TITLE.match(title)[1]}, the file {path.name[:2]}"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_has_a_sources_section_with_a_link(path):
    markdown = "\n".join(source(c) for c in load(path)["cells"] if c["cell_type"] == "markdown")
    found = re.search(r"^## Sources[ \t]*$(.*?)(?=^#{1,2} |\Z)", markdown, re.M | re.S)
    assert found, f"{path.name}: no `## Sources` section"
    assert LINK.search(found[1]), f"{path.name}: the Sources section has no link"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_code_cell_carries_an_nbval_comment(path):
    for i, cell in enumerate(code_cells(load(path)), 1):
        assert not NBVAL_COMMENT.search(source(cell)), (
            f"{path.name}, cell [{i}]: an NBVAL_ comment; use the cell tag instead "
            "(metadata.tags: nbval-ignore-output)"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_exercise_is_followed_by_an_answer_note(path):
    cells = load(path)["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not CHECK_CALL.search(IMPORTS.sub("", source(cell))):
            continue
        after = cells[i + 1] if i + 1 < len(cells) else None
        assert after and after["cell_type"] == "markdown" and "<details>" in source(after), (
            f"{path.name}: the exercise in cell {i} (it calls a check_*) is not followed by an "
            "answer note (a markdown cell with <details><summary>Answer</summary> ...)"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_cells_importing_numpy_or_matplotlib_are_tagged_for_the_browser(path):
    for i, cell in enumerate(code_cells(load(path)), 1):
        if NEEDS_CDN.search(source(cell)):
            tags = cell.get("metadata", {}).get("tags", [])
            assert "needs-cdn" in tags, f"{path.name}, cell [{i}]: imports numpy/matplotlib"


def test_badge_link_points_at_the_notebook_in_the_site():
    assert lite_url("04_training.ipynb", 1) == "../lite/lab/index.html?path=04_training.ipynb"
    page = '<h1 class="print">T</h1><article><h1>T</h1><p>text</p></article>'
    once = add_badge(page, "u")
    assert once.count("lite-badge") == 1
    assert once.index("lite-badge") > once.index("<article>")
    assert add_badge(once, "u") == once  # running the script twice changes nothing


def test_html_book_builds_with_a_browser_link_on_every_chapter_page(tmp_path):
    pytest.importorskip("jupyter_book")
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_book.cli.main import main; main()",
            "build",
            "--path-output",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    badges = subprocess.run(
        [sys.executable, str(BOOK / "add_lite_badges.py"), str(html)],
        capture_output=True,
        text=True,
    )
    assert badges.returncode == 0, badges.stderr
    assert (html / "index.html").is_file()
    for file in toc_files():
        page = html / f"{file}.html"
        assert page.is_file(), f"{file}: no page in the built book"
        name = Path(file).name
        text = page.read_text("utf-8")
        assert f"lite/lab/index.html?path={name}.ipynb" in text, f"{file}: no browser link"
