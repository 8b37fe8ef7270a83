# The book (included by the top-level Makefile, which defines VENV, PY and the
# $(VENV)/.installed target).
#   make book       HTML book in _build/html, with an "open in the browser" link per chapter
#   make notebooks  re-execute every chapter in place, in order (outputs are stored)
BOOK_HTML := _build/html
# The shared copy of makemore's names.txt, if it sits beside the repository.
BOOK_DATA := $(abspath $(wildcard ../shared/data/names.txt))

.PHONY: book notebooks

book: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build --path-output . .
	$(PY) book/add_lite_badges.py $(BOOK_HTML)
	@if [ -d lite/_output ]; then rm -rf $(BOOK_HTML)/lite && cp -r lite/_output $(BOOK_HTML)/lite \
		&& echo "JupyterLite site copied to $(BOOK_HTML)/lite"; \
	else echo "no JupyterLite site in lite/_output (make site): the browser links need one"; fi

notebooks: $(VENV)/.installed
	MICROGPT_DATA="$${MICROGPT_DATA:-$(BOOK_DATA)}" $(PY) book/run_notebooks.py
