# One command runs the platform, one command passes the tests; both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run example test test-full lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## API + worker + (embedded) Redis; Ctrl-C stops everything
	$(BIN)/python run_platform.py

example: $(STAMP)  ## the example shop app (examples/shop) + one worker + (embedded) Redis; Ctrl-C stops everything
	$(BIN)/python -m examples.shop

test: $(STAMP)  ## the default suite: fast, real Redis, real worker, real app
	$(BIN)/pytest -q

test-full: $(STAMP)  ## the default suite plus the long fault-injection variants
	$(BIN)/pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)  ## raw arq vs the platform on its own Redis; writes docs/benchmarks.md (about 5 minutes)
	$(BIN)/pip install --quiet -e '.[dev,embedded,bench]'
	BENCH_COMMAND='make bench' $(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
