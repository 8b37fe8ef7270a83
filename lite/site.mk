# JupyterLite site of the book (included by the top-level Makefile, which
# defines VENV, PY and the $(VENV)/.installed target).
#   SITE_DIR  where the site goes (relative to the repository, or absolute)
#   MICROGPT_SITE_CACHE (environment)  download cache instead of lite/_cache
#   BENCH_ARGS  arguments of lite/bench_browser.py (e.g. --stages flat,sumprod --steps 1000)
#   ENGINE_ARGS arguments of lite/bench_engines.py (e.g. --engines chromium --rounds 5)
SITE_DIR ?= lite/_output
SITE_PORT ?= 8000
BENCH_ARGS ?=
ENGINE_ARGS ?=

.PHONY: site site-force serve bench-browser browser-drivers

site: $(VENV)/.installed  ## build the static JupyterLite site into $(SITE_DIR)
	$(PY) lite/build_site.py --output "$(SITE_DIR)"

site-force: $(VENV)/.installed  ## rebuild the site even if it looks up to date
	$(PY) lite/build_site.py --output "$(SITE_DIR)" --force

serve: site  ## serve the site on http://127.0.0.1:$(SITE_PORT)/
	$(PY) lite/serve.py "$(SITE_DIR)" --port $(SITE_PORT)

# The landing page's timings in Chromium, Firefox ESR and WebKitGTK (cold loads, offline;
# lite/_bench/engines.json), then every pure-Python stage in Chromium and CPython
# (lite/_bench/browser_bench.json).
bench-browser: site browser-drivers
	$(PY) lite/bench_engines.py --site "$(SITE_DIR)" $(ENGINE_ARGS)
	$(PY) lite/bench_browser.py $(BENCH_ARGS)

# puppeteer-core, which drives Firefox ESR over WebDriver BiDi, from lite/package-lock.json
browser-drivers: lite/node_modules/.package-lock.json
lite/node_modules/.package-lock.json: lite/package.json lite/package-lock.json
	npm ci --prefix lite --no-audit --no-fund
