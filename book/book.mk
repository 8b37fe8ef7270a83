# The book (included by the top-level Makefile, which defines VENV, PY and the
# $(VENV)/.installed target).
#   make book       HTML book in _build/html, with an "open in the browser" link per chapter
#                   (and the site of `make site`, if built, copied to _build/html/lite)
#   make notebooks  re-execute every chapter in place, in order (outputs are stored)
BOOK_HTML := _build/html
SITE_DIR ?= lite/_output
# The shared copy of makemore's names.txt, if it sits beside the repository.
BOOK_DATA := $(abspath $(wildcard ../shared/data/names.txt))

.PHONY: book notebooks

book: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build --path-output . .
	$(PY) book/add_lite_badges.py $(BOOK_HTML)
	@if [ -f "$(SITE_DIR)/lab/index.html" ]; then rm -rf $(BOOK_HTML)/lite \
		&& cp -r "$(SITE_DIR)" $(BOOK_HTML)/lite \
		&& echo "JupyterLite site copied to $(BOOK_HTML)/lite"; \
	else echo "no JupyterLite site in $(SITE_DIR) (make site): the browser links need one"; fi

notebooks: $(VENV)/.installed
	MICROGPT_DATA="$${MICROGPT_DATA:-$(BOOK_DATA)}" $(PY) book/run_notebooks.py
