# Two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs, and the test and lint tools on top: `make run` installs only the first.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

# `make run PORT=8001` (or HOST=0.0.0.0): passed on only when given, since an empty PORT
# would not parse. AFTERSALE_PORT and AFTERSALE_HOST in the environment work too.
ifdef PORT
export PORT
endif
ifdef HOST
export HOST
endif

.PHONY: run test lint format db-upgrade clean bench soak wrk

# Install exactly the versions in constraints.txt, so every machine gets the same tree.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "aftersale needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(DEV_STAMP)

# axe-core for the console's accessibility checks (tests/browser), from the npm registry at
# the version package-lock.json holds. Without npm those checks skip (CI fails instead).
AXE := tests/browser/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error && touch $(AXE); \
	else echo "npm not found: the console's accessibility checks will be skipped"; fi

db-upgrade: $(STAMP)
	$(BIN)/aftersale db upgrade

# Listens on HOST:PORT (default 127.0.0.1:8000); PUBLIC_URL and `aftersale health` follow.
run: db-upgrade
	$(BIN)/aftersale serve --role all

test: $(DEV_STAMP) $(AXE)
	$(BIN)/pytest

# Every benchmark with its same-run baseline; one summary line each (docs/performance.md).
# The HTTP ones are driven by wrk (C, its own process): installed from the distribution.
bench: $(DEV_STAMP) wrk
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

wrk:
	@command -v wrk >/dev/null || { \
	  echo "installing wrk (the HTTP load generator of the benchmarks) with apt-get"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  { command -v apt-get >/dev/null && $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } || { \
	    echo "Could not install wrk: install it from your distribution (Debian/Ubuntu:" \
	      "apt-get install wrk; macOS: brew install wrk), then run make bench again." >&2; \
	    exit 1; }; }

# Half the measured capacity for SOAK_MINUTES, driven by wrk; memory growth and errors
# (bench/soak.py).
SOAK_MINUTES ?= 30
soak: $(DEV_STAMP) wrk
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES)

lint: $(DEV_STAMP)
	$(BIN)/ruff format --check app tests migrations
	$(BIN)/ruff check app tests migrations
	$(BIN)/mypy app
	$(BIN)/lint-imports

format: $(DEV_STAMP)
	$(BIN)/ruff format app tests migrations
	$(BIN)/ruff check --fix app tests migrations

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
