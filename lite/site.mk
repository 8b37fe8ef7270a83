# JupyterLite site of the book (included by the top-level Makefile, which
# defines VENV, PY and the $(VENV)/.installed target).
#   SITE_DIR  where the site goes (relative to the repository, or absolute)
#   MICROGPT_SITE_CACHE (environment)  download cache instead of lite/_cache
#   BENCH_ARGS  arguments of lite/bench_browser.py (e.g. --stages flat,sumprod --steps 1000)
SITE_DIR ?= lite/_output
SITE_PORT ?= 8000
BENCH_ARGS ?=

.PHONY: site site-force serve bench-browser

site: $(VENV)/.installed  ## build the static JupyterLite site into $(SITE_DIR)
	$(PY) lite/build_site.py --output "$(SITE_DIR)"

site-force: $(VENV)/.installed  ## rebuild the site even if it looks up to date
	$(PY) lite/build_site.py --output "$(SITE_DIR)" --force

serve: site  ## serve the site on http://127.0.0.1:$(SITE_PORT)/
	$(PY) lite/serve.py "$(SITE_DIR)" --port $(SITE_PORT)

bench-browser: site  ## train every pure-Python stage in Chromium; writes lite/_bench/browser_bench.json
	$(PY) lite/bench_browser.py $(BENCH_ARGS)
