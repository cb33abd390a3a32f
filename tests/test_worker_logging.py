"""A worker built from arq's arguments alone: plain arq functions log their start, success and failure (with
the traceback), the host's own log handlers stay, and a second `main()` (what `arq --watch` does) sleeps
between polls instead of busy-looping."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import func

from core import codec
from core.worker import PlatformWorker
from settings import Settings


async def plain_ok(ctx: dict[str, Any], x: int) -> int:
    return x * 2


async def plain_fails(ctx: dict[str, Any]) -> None:
    raise LookupError("no such thing")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[dict[str, Any]]:
        return [r.msg for r in self.records if isinstance(r.msg, dict)]


@pytest.fixture
def host_handler() -> Iterator[Collect]:
    """A handler the host application installed on the root logger before the worker was built."""
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_plain_functions_log_start_success_and_failure_and_host_handlers_stay(
    settings: Settings, redis: ArqRedis, host_handler: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    await redis.enqueue_job("plain_ok", 21, _job_id="ok")
    await redis.enqueue_job("plain_fails", _job_id="bad")
    worker = PlatformWorker(
        functions=[func(plain_ok), func(plain_fails)],
        redis_pool=redis,
        burst=True,
        poll_delay=0,
        job_serializer=codec.dumps,  # the suite's pool writes JSON
        job_deserializer=codec.loads,
    )
    await worker.main()
    await worker.close()
    assert host_handler in logging.getLogger().handlers
    events = host_handler.events()
    by_job = {(e.get("job_id"), e.get("event")) for e in events}
    assert {("ok", "job.started"), ("ok", "job.succeeded"), ("bad", "job.started"), ("bad", "job.failed")} <= by_job
    failed = next(e for e in events if e.get("event") == "job.failed")
    assert failed["error"] == "LookupError" and "no such thing" in failed["traceback"]
    assert worker.jobs_complete == 1 and worker.jobs_failed == 1


async def test_a_second_main_sleeps_between_polls(settings: Settings, redis: ArqRedis) -> None:
    worker = PlatformWorker(functions=[func(plain_ok)], redis_pool=redis, poll_delay=0.2, handle_signals=False)
    calls = 0
    original = worker._claim_and_wait

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await original()

    worker._claim_and_wait = counted  # type: ignore[method-assign]
    for _ in range(2):  # arq --watch: main(), then handle_sig + close(), then main() again
        task = asyncio.create_task(worker.main())
        await asyncio.sleep(0.3)
        worker.handle_sig(10)
        await asyncio.gather(task, return_exceptions=True)
        worker._pool = redis  # close() closes the pool; --watch reconnects through redis_settings
    calls = 0
    task = asyncio.create_task(worker.main())
    started = time.monotonic()
    await asyncio.sleep(1.0)
    worker.handle_sig(10)
    await asyncio.gather(task, return_exceptions=True)
    assert calls <= (time.monotonic() - started) / 0.2 + 3, f"{calls} polls in about a second: a busy loop"
