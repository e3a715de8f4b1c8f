# Two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format db-upgrade clean bench soak

# Install exactly the versions in constraints.txt, so every machine gets the same tree.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "aftersale needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

db-upgrade: $(STAMP)
	$(BIN)/aftersale db upgrade

run: db-upgrade
	$(BIN)/aftersale serve --role all --host 127.0.0.1 --port 8000

test: $(STAMP)
	$(BIN)/pytest

# Every benchmark with its same-run baseline; one summary line each (docs/performance.md).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# Half the measured capacity for SOAK_MINUTES; memory growth and errors (bench/soak.py).
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python bench/soak.py --minutes $(SOAK_MINUTES)

lint: $(STAMP)
	$(BIN)/ruff format --check app tests migrations
	$(BIN)/ruff check app tests migrations
	$(BIN)/mypy app
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format app tests migrations
	$(BIN)/ruff check --fix app tests migrations

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
