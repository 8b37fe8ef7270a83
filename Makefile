# Quickstart: `make run` trains and prints names; `make test` runs every check.
# `make check` is the edit loop: lint, unit tests, every stage's 100-step equivalence.
# Both create .venv with the python3 on PATH (3.11 or newer) on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test check lint format bench readme-table microbench clean

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

# No notebooks, no browser, no 1000-step runs, no book build: on two workers.
check: lint
	$(PY) -m pytest -q -p no:nbval -o addopts= -n 2 -m "not slow" tests \
		--ignore=tests/test_site.py \
		--deselect tests/test_book.py::test_html_book_builds_with_a_browser_link_on_every_chapter_page

bench: $(VENV)/.installed-run
	$(PY) -m microgpt bench $(ARGS)

# The README's stage table is this command's output; run it on a quiet machine.
readme-table: $(VENV)/.installed-run
	$(PY) -m microgpt bench --repeat 5 --update-readme README.md $(ARGS)

microbench: $(VENV)/.installed
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) _build .pytest_cache

# The book (Jupyter Book) and the browser site (JupyterLite) have their own targets.
-include book/book.mk
-include lite/site.mk
