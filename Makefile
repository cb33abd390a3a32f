# One command runs the platform, one command passes the tests; every target creates .venv itself, so
# nothing here needs an activated virtualenv. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# arq's own test suite runs in a venv of its own: it needs arq's older test dependencies (docs/arq-compatibility.md)
ARQ_VENV := .venv-arq
ARQ_STAMP := $(ARQ_VENV)/.installed
# The browser tests drive Debian's Chromium (Playwright never downloads a browser); `make install` adds it.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
DATA_DIR ?= .data

.PHONY: help install run api worker check-worker test test-arq test-full lint typecheck check bench clean clean-data \
	key redis-acl example

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/'

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

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-liberation

install: $(STAMP) $(CHROMIUM)  ## create .venv and install the project with its dev tools (and Chromium, for the browser tests)

run: $(STAMP)  ## API + worker + (embedded) Redis; Ctrl-C stops everything
	$(BIN)/python run_platform.py

example: $(STAMP)  ## the example shop app (examples/shop) + one worker + (embedded) Redis; Ctrl-C stops everything
	$(BIN)/python -m examples.shop

api: $(STAMP)  ## the API alone, on API_HOST:API_PORT, against REDIS_URL
	$(BIN)/python -m service.main

worker: $(STAMP)  ## one more worker against REDIS_URL (as many as you like)
	$(BIN)/arq worker.WorkerSettings

check-worker: $(STAMP)  ## exit 0 when a worker on QUEUE_NAME refreshed its health key recently
	$(BIN)/arq --check worker.WorkerSettings

test: $(STAMP) $(ARQ_STAMP) $(CHROMIUM)  ## the default suite: fast, real Redis, real worker, real app; then arq's own suite
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-arq

test-arq: $(ARQ_STAMP)  ## arq 0.28.0's own test suite against the platform's worker; ARGS='-k name' narrows it
	$(ARQ_VENV)/bin/python -m compat.arq.run $(ARGS)

test-full: $(STAMP) $(ARQ_STAMP) $(CHROMIUM)  ## the default suite plus the long fault-injection variants, then arq's own suite
	$(BIN)/pytest -q -m ''
	$(MAKE) --no-print-directory test-arq

lint: $(STAMP)  ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy, strict
	$(BIN)/mypy

check: lint typecheck test  ## lint, typecheck and test: what CI runs

bench: $(STAMP)  ## raw arq vs the platform, then each issue's own figures against its targets; writes docs/benchmarks.md (about 10 minutes)
	$(BIN)/pip install --quiet -e '.[dev,embedded,bench]'
	BENCH_COMMAND='make bench' $(BIN)/python -m bench.run

key: $(STAMP)  ## mint an API key: make key NAME=billing SCOPES=enqueue,read (prints it once)
	@test -n '$(NAME)' || { echo 'give NAME=..., e.g. make key NAME=billing SCOPES=enqueue,read' >&2; exit 2; }
	$(BIN)/python -m service.mint_key --name '$(NAME)' --scopes '$(or $(SCOPES),enqueue,read)'

redis-acl: $(STAMP)  ## print the least-privilege ACL SETUSER lines for the API and the worker
	$(BIN)/python -m core.redis_acl

clean:  ## remove the virtualenvs and tool caches (keeps the data of make run's Redis)
	rm -rf $(VENV) $(ARQ_VENV) .cache .pytest_cache .mypy_cache .ruff_cache

clean-data:  ## remove DATA_DIR/redis (.data/redis): every job and result make run's Redis kept; stop make run first
	rm -rf '$(DATA_DIR)/redis'
	rmdir '$(DATA_DIR)' 2>/dev/null || true
