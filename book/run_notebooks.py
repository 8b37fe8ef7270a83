"""Re-execute the book's chapters in place, in order, and print each one's run time.

Like `jupyter nbconvert --execute --inplace`, but stream outputs are merged and
carriage returns resolved, so a progress bar is stored as its final line only, and
no execution timestamps are stored, so a re-run changes only what really changed.
Figures the prose marks (`1.6x<!--fig:name-->`) are written as the new outputs quote
them, and each change is printed: read the sentence around it again.
Usage: python book/run_notebooks.py [book/NN_name.ipynb ...]  (default: every chapter)
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from microgpt.book import chapters, figures
from microgpt.tools.args import ArgumentParser

BOOK = Path(__file__).resolve().parent


def execute(path):
    """Run every cell of the notebook at `path` in a fresh kernel and save it; returns seconds."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps only make diffs noisy
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        coalesce_streams=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    for name, old, new in figures.sync_prose(nb):
        print(f"{path.name}: fig:{name} {old} -> {new}")
    nbformat.write(nb, path)
    return seconds


def notebook_path(text):
    """A flag type: an existing .ipynb file, resolved (the runner saves it in place)."""
    path = Path(text)
    if path.suffix != ".ipynb":
        raise argparse.ArgumentTypeError(f"{text}: not a notebook (.ipynb); give a chapter's file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such notebook")
    return path.resolve()


def parser():
    p = ArgumentParser(
        prog="book/run_notebooks.py",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    p.add_argument(
        "notebooks",
        nargs="*",
        type=notebook_path,
        metavar="NOTEBOOK",
        help="chapters to run, in the order given (default: every chapter of book/)",
    )
    return p


def main(argv):
    paths = parser().parse_args(argv).notebooks or chapters(BOOK)
    total = 0.0
    for path in paths:
        seconds = execute(path)
        total += seconds
        print(f"{path.name:32s} {seconds:6.1f} s", flush=True)
    print(f"{'total':32s} {total:6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
