"""What the book's chapters import (notebook helpers, exercise checkers), and the chapter list.

`chapters` is the one definition of which notebooks are chapters, shared by the
site builder, the notebook runner, the HTML badges and the tests.
"""

from pathlib import Path

from ..arguments import ArgumentError, checked, path, shown

CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"  # 00_preface.ipynb ... 18_data_parallel.ipynb


@checked(book_dir=path)
def chapters(book_dir):
    """The chapter notebooks in `book_dir`, in reading order."""
    try:
        return sorted(Path(book_dir).glob(CHAPTER_GLOB))
    except OSError as e:  # a name too long, a folder that may not be read
        raise ArgumentError(f"chapters: book_dir {shown(book_dir)}: {e.strerror or e}") from None
