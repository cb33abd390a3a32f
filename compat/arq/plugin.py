"""pytest plugin for arq's own test suite (loaded with `-p compat.arq.plugin` by compat/arq/run.py):

- points `arq.worker.Worker` and `arq.Worker` at the platform's worker before arq's tests are imported, so
  their `Worker(...)`, arq's `create_worker`/`run_worker` and its CLI all build the platform's class;
- starts a redis-server of its own on a free port (never the one on 6379) in place of arq's Docker fixtures;
- gives the platform's settings, which arq's tests do not pass, through the environment;
- marks the tests listed in compat/arq/expectations.py as skipped or expected to fail.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import arq
import arq.constants
import arq.worker
import pytest

from compat.arq.expectations import EXPECTED_FAILURES_UNTIL_REBUILD, REBUILD_REASON, SKIPS
from core.embedded_redis import RedisProcess, free_port, start_redis
from settings import Settings

# The class under test, as `module.Class`: the one line to change when the worker moves.
WORKER_CLASS = "core.worker.PlatformWorker"

_redis: RedisProcess | None = None
_redis_dir: tempfile.TemporaryDirectory[str] | None = None


def load_worker_class() -> type[arq.worker.Worker]:
    module_name, _, class_name = WORKER_CLASS.rpartition(".")
    worker_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(worker_class, type) and issubclass(worker_class, arq.worker.Worker)):
        raise pytest.UsageError(f"{WORKER_CLASS} is not a subclass of arq.worker.Worker")
    return worker_class


# Swapped when pytest imports this plugin (`-p`), before it imports arq's conftest and test modules, which
# bind `Worker` at import; pytest_collection_modifyitems checks that every one of them got this class.
WORKER = load_worker_class()
arq.worker.Worker = WORKER  # type: ignore[misc]
arq.Worker = WORKER  # type: ignore[misc]


def pytest_configure(config: pytest.Config) -> None:
    global _redis, _redis_dir
    _redis_dir = tempfile.TemporaryDirectory(prefix="arq-compat-redis-")
    data_dir = Path(_redis_dir.name)
    _redis = start_redis(free_port(), data_dir, appendonly=False, log_file=data_dir / "redis.log")
    # The platform's own settings: arq's tests pass none, so the worker reads them from the environment;
    # the host's values (a REDIS_URL to a shared Redis, a tuned MAX_JOBS) must not reach the run.
    for name in Settings.model_fields:
        os.environ.pop(name.upper(), None)
    os.environ.update(
        REDIS_URL=_redis.url,
        QUEUE_NAME=arq.constants.default_queue_name,
        JOB_MODULES="jobs",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _redis is not None:
        _redis.stop()
    if _redis_dir is not None:
        _redis_dir.cleanup()


def pytest_report_header(config: pytest.Config) -> list[str]:
    port = _redis.port if _redis else None
    return [f"arq {arq.VERSION} test suite; Worker = {WORKER_CLASS}; redis-server on 127.0.0.1:{port}"]


@pytest.fixture(scope="session")
def redis_container() -> Iterator[RedisProcess]:
    assert _redis is not None, "redis-server is started in pytest_configure"
    yield _redis


@pytest.fixture(scope="session")
def test_redis_host(redis_container: RedisProcess) -> str:
    return "127.0.0.1"


@pytest.fixture(scope="session")
def test_redis_port(redis_container: RedisProcess) -> int:
    return redis_container.port


def _listed(nodeid: str, table: dict[str, str]) -> str | None:
    """A test's entry: by its exact id, or by the id without parameters (covers every parameter set)."""
    return table.get(nodeid) or table.get(nodeid.split("[", 1)[0])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = [module for name, module in sys.modules.items() if name == "tests" or name.startswith("tests.")]
    for module in suite:
        imported = getattr(module, "Worker", WORKER)
        if imported is not WORKER:  # imported arq's Worker before the swap: it would test arq, not us
            raise pytest.UsageError(f"{module.__name__}.Worker is {imported!r}, not {WORKER_CLASS}")

    overlap = set(SKIPS) & set(EXPECTED_FAILURES_UNTIL_REBUILD)
    if overlap:
        raise pytest.UsageError(f"listed both as skipped and as expected failures: {sorted(overlap)}")
    matched: set[str] = set()
    for item in items:
        if (reason := _listed(item.nodeid, SKIPS)) is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif (diagnosis := _listed(item.nodeid, EXPECTED_FAILURES_UNTIL_REBUILD)) is not None:
            item.add_marker(pytest.mark.xfail(reason=f"{REBUILD_REASON}: {diagnosis}", strict=False))
        else:
            continue
        matched.update({item.nodeid, item.nodeid.split("[", 1)[0]})
    whole_suite = not config.option.keyword and not config.option.markexpr and config.args == ["tests"]
    stale = (set(SKIPS) | set(EXPECTED_FAILURES_UNTIL_REBUILD)) - matched
    if whole_suite and stale:
        raise pytest.UsageError(f"compat/arq/expectations.py names tests arq's suite does not have: {sorted(stale)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Collect what a failed test left behind (a timed-out test leaves pending tasks and coroutines) before
    pytest formats its failure. Seen without it: a timeout crashed the whole session with INTERNALERROR
    `SystemError: AST constructor recursion depth mismatch` (CPython 3.11.7) inside pytest's ast.parse of the
    traceback's source, so every later test went unreported."""
    if call.excinfo is not None:
        gc.collect()
    return (yield)
