"""Applies to every test, the notebooks (nbval) included: use the shared names file.

Notebook kernels and subprocesses inherit MICROGPT_DATA, so no test ever downloads.
"""

import os

from helpers import SHARED_NAMES  # tests/helpers.py: pytest puts tests/ on the path

if SHARED_NAMES.is_file():
    os.environ.setdefault("MICROGPT_DATA", str(SHARED_NAMES))
