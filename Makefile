# Quickstart: `make run` trains and prints names; `make test` runs every check.
# `make check` is the edit loop: lint, unit tests, every stage's 100-step equivalence.
# Both create .venv with the python3 on PATH (3.11 or newer) on first use.

# Every path here is relative to this folder: from another one (`make -f path/to/Makefile`)
# they would name other files, so that stops at once, saying how to run it.
HERE := $(realpath $(dir $(lastword $(MAKEFILE_LIST))))
ifneq ($(HERE),$(realpath $(CURDIR)))
$(error this Makefile runs in its own folder; run: make -C $(HERE) $(MAKECMDGOALS))
endif

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test check lint format bench readme-table scale-table readme-data-parallel readme-torch-engines microbench clean

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; sys.exit("microgpt-book needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Core plus numpy: what `make run` needs.
$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[numpy]"
	touch $@

# Everything: tests, notebooks, the book and the browser site.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) -m microgpt $(ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check microgpt tests book lite benchmarks conftest.py
	$(PY) -m ruff format --check microgpt tests book lite benchmarks conftest.py

format: $(VENV)/.installed
	$(PY) -m ruff format microgpt tests book lite benchmarks conftest.py
	$(PY) -m ruff check --fix microgpt tests book lite benchmarks conftest.py

# Two workers; --dist loadfile keeps each notebook's cells (and each test file) on one worker.
test: lint
	$(PY) -m pytest -n 2 --dist loadfile

# No notebooks, no browser, no 1000-step runs, no book build: on two workers, handed
# out test by test (--dist load), the `heavy` ones first (see tests/conftest.py).
check: lint
	$(PY) -m pytest -q -p no:nbval -o addopts= -n 2 --dist load -m "not slow" tests \
		--ignore=tests/test_site.py \
		--deselect tests/test_book.py::test_html_book_builds_with_a_browser_link_on_every_chapter_page

bench: $(VENV)/.installed-run
	$(PY) -m microgpt bench $(ARGS)

# The benchmark of record, microgpt/tools/record.json, and the README's stage tables rendered
# from it (each round times the steps with the collector running and off; windows of 20, 50
# and 100 steps): about 12 minutes, on a quiet machine. The full environment, so the compiled
# stage is measured too (a stage that cannot run is left out, and the table says why).
# `python -m microgpt bench --from-record microgpt/tools/record.json` prints it again.
readme-table: $(VENV)/.installed
	$(PY) -m microgpt bench --steps 100 --repeat 5 --record microgpt/tools/record.json --update-readme README.md $(ARGS)

# The scale section of the record (tokens/s over widths 16 to 512, batches 1 and 32, for
# the stages that take larger shapes) and the README's second table: a few minutes. It is
# added to the record `make readme-table` wrote, which keeps it when it runs again.
scale-table: $(VENV)/.installed
	$(PY) -m microgpt bench --scale --repeat 5 --record microgpt/tools/record.json --update-readme README.md $(ARGS)

# The data-parallel section of the record (PyTorch: one process and two, widths 16 and 256,
# each round a fresh torchrun launch) and the README's table of it: about 10 minutes.
readme-data-parallel: $(VENV)/.installed
	$(PY) -m microgpt bench --data-parallel --repeat 5 --record microgpt/tools/record.json --update-readme README.md $(ARGS)

# The torch-engines section of the record (`tensor` beside `torch`, eager and compiled) and
# the README's table of it: about 10 minutes, most of it torch.compile building models.
readme-torch-engines: $(VENV)/.installed
	$(PY) benchmarks/torch_cpu.py --rounds 5 --record microgpt/tools/record.json --update-readme README.md $(ARGS)

microbench: $(VENV)/.installed
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) _build .pytest_cache

# The book (Jupyter Book) and the browser site (JupyterLite) have their own targets.
-include book/book.mk
-include lite/site.mk
