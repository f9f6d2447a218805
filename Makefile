# The two commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SOURCES := pyproject.toml setup.py $(shell find middleware banner analytics examples/demo -type f -not -path '*/__pycache__/*' -not -path '*/node_modules/*' 2>/dev/null)
ESBUILD := banner/node_modules/.bin/esbuild

.PHONY: demo test test-slow bench check lint typecheck docs package compiler chromium wrk banner clean
.DELETE_ON_ERROR:

demo: $(VENV)/.package
	$(BIN)/koekje demo

# The tests run in TEST_WORKERS processes (pytest-xdist; `auto` is one per core): each has its own chDB data
# directory, browser and servers. Tests are handed out one by one as workers free up (worksteal), so the
# long ones (the packaging builds, the browser audits) do not leave a worker idle. TEST_WORKERS=0 runs them
# in this process, one after the other.
TEST_WORKERS ?= auto
test: $(VENV)/.package $(VENV)/.test-deps chromium wrk $(ESBUILD) check docs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# The documentation site, offline and strict: a broken link, a missing page or a missing include fails.
# The configuration reference is generated from the installed schema (docs/hooks/reference.py).
docs: $(VENV)/.package $(VENV)/.test-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The slow ones (a load soak of several minutes with several workers); not part of `make test`.
test-slow: $(VENV)/.package $(VENV)/.test-deps
	$(BIN)/python -m pytest -m slow -s

# The request-path benchmarks, full size: over HTTP, in process, and memory over 1,000,000 consented requests
# (about a quarter of an hour in all; method and figures in benchmarks/RESULTS.md). The smoke runs of every
# benchmark (tests/test_benchmarks.py, seconds each) are part of `make test`; the full runs of the dashboard's
# and the pipeline's (ingest, sink, steady, visibility, consent_flood) are run by hand: see RESULTS.md.
bench: $(VENV)/.package $(VENV)/.test-deps wrk
	$(BIN)/python benchmarks/over_http.py
	$(BIN)/python benchmarks/request_path.py
	$(BIN)/python benchmarks/memory.py

# The banner's built assets (banner/static) are committed; rebuild them after changing banner/src.
banner: $(ESBUILD)
	cd banner && node build.mjs

# The locked toolchain: esbuild, for building the banner and for the test that the committed build is fresh;
# axe-core, for the accessibility test of the banner.
$(ESBUILD): banner/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -q && apt-get install -y -q nodejs npm; \
	  else echo "Building the banner needs Node.js and npm: sudo apt-get install nodejs npm"; exit 1; fi; }
	cd banner && npm ci --no-audit --no-fund
	touch $@

check: lint typecheck

lint: $(VENV)/.test-deps
	$(BIN)/ruff check setup.py middleware banner analytics examples tests benchmarks docs/hooks
	$(BIN)/ruff format --check setup.py middleware banner analytics examples tests benchmarks docs/hooks

# mypy checks the installed package: the koekje namespace only exists there (setuptools package-dir).
typecheck: $(VENV)/.package $(VENV)/.test-deps
	$(BIN)/mypy -p koekje.middleware -p koekje.analytics -p koekje.banner -p koekje.demo
	$(BIN)/mypy tests benchmarks docs/hooks
	$(BIN)/mypy examples/fastapi_site examples/plain_asgi examples/litestar_site examples/multi_worker

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "Cannot create a virtualenv: install Debian's python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/pip install -q --upgrade "pip>=23" "setuptools>=77"

# Dependencies change only with pyproject.toml; the package itself is reinstalled when a source changes.
# (Installed uncompiled here, only for what it depends on; .package builds it compiled with the build-system's
# requires of pyproject.toml, named again here because --no-build-isolation does not install them.)
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "setuptools>=77" "mypy>=2.4.1,<2.5"
	KOEKJE_COMPILE=0 $(BIN)/pip install -q .
	touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.deps
	$(BIN)/pip install -q ".[test,docs]"
	touch $@

$(VENV)/.package: $(SOURCES) $(VENV)/.deps | compiler
	$(BIN)/pip install -q --no-deps --no-build-isolation --force-reinstall .
	touch $@

# A C compiler and the Python headers, for the compiled request path (setup.py). Without them koekje still
# installs, as plain Python (slower; the tests that check the build is compiled then fail, saying why).
compiler:
	@if ! command -v cc >/dev/null || ! $(PYTHON) -c 'import os, sys, sysconfig; \
	    sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q gcc python3-dev; \
	  else echo "To compile koekje's request path: sudo apt-get install gcc python3-dev (else plain Python)"; fi; \
	fi

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q chromium; \
	  else echo "The browser tests need Chromium at /usr/bin/chromium: sudo apt-get install chromium"; exit 1; fi; \
	fi

# wrk, the load generator of the over-HTTP benchmark (Debian's package).
wrk:
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q wrk; \
	  else echo "The over-HTTP benchmark needs wrk: sudo apt-get install wrk"; exit 1; fi; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .koekje-demo banner/node_modules
