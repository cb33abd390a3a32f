# One command runs the platform, one command passes the tests; both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-full lint typecheck check bench clean key redis-acl

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## API + worker + (embedded) Redis; Ctrl-C stops everything
	$(BIN)/python run_platform.py

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

key: $(STAMP)  ## mint an API key: make key NAME=billing SCOPES=enqueue,read (prints it once)
	$(BIN)/python -m service.mint_key --name '$(or $(NAME),$(error give NAME=...))' --scopes '$(or $(SCOPES),enqueue,read)'

redis-acl: $(STAMP)  ## print the least-privilege ACL SETUSER lines for the API and the worker
	$(BIN)/python -m core.redis_acl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
