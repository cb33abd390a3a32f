# One command runs the platform, one command passes the tests; both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# arq's own test suite runs in a venv of its own: it needs arq's older test dependencies (docs/arq-compatibility.md)
ARQ_VENV := .venv-arq
ARQ_STAMP := $(ARQ_VENV)/.installed

.PHONY: install run test test-arq test-full lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

$(ARQ_STAMP): pyproject.toml
	$(PYTHON) -m venv $(ARQ_VENV)
	$(ARQ_VENV)/bin/pip install --quiet --upgrade pip
	$(ARQ_VENV)/bin/pip install --quiet -e '.[arq-compat]'
	touch $(ARQ_STAMP)

install: $(STAMP)

run: $(STAMP)  ## API + worker + (embedded) Redis; Ctrl-C stops everything
	$(BIN)/python run_platform.py

test: $(STAMP) $(ARQ_STAMP)  ## the default suite: fast, real Redis, real worker, real app; then arq's own suite
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-arq

test-arq: $(ARQ_STAMP)  ## arq 0.28.0's own test suite against the platform's worker; ARGS='-k name' narrows it
	$(ARQ_VENV)/bin/python -m compat.arq.run $(ARGS)

test-full: $(STAMP) $(ARQ_STAMP)  ## the default suite plus the long fault-injection variants, then arq's own suite
	$(BIN)/pytest -q -m ''
	$(MAKE) --no-print-directory test-arq

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
	rm -rf $(VENV) $(ARQ_VENV) .cache .pytest_cache .mypy_cache .ruff_cache
