"""Applies to every test, the notebooks (nbval) included: use the shared names file.

Notebook kernels and subprocesses inherit MICROGPT_DATA, so no test ever downloads.
"""

import os
from pathlib import Path

SHARED_NAMES = Path(__file__).resolve().parent.parent / "shared" / "data" / "names.txt"

if SHARED_NAMES.is_file():
    os.environ.setdefault("MICROGPT_DATA", str(SHARED_NAMES))
