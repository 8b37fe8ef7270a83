"""What the book's chapters import (notebook helpers, exercise checkers), and the chapter list.

`chapters` is the one definition of which notebooks are chapters, shared by the
site builder, the notebook runner, the HTML badges and the tests.
"""

from pathlib import Path

CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"  # 00_preface.ipynb ... 16_bigger.ipynb


def chapters(book_dir):
    """The chapter notebooks in `book_dir`, in reading order."""
    return sorted(Path(book_dir).glob(CHAPTER_GLOB))
