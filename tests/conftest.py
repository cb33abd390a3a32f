"""Fixtures: a real redis-server for the session, the real app with its lifespan, real workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from asgi_lifespan import LifespanManager

from core.embedded_redis import RedisProcess, free_port, start_redis
from core.redis import open_api_pool
from core.registry import Registry, load_registry
from core.worker import PlatformWorker
from core.worker_config import worker_kwargs
from service.app import create_app
from settings import Settings

TEST_JOB_MODULES = ["jobs", "tests.support.sample_jobs"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    data_dir = tmp_path_factory.mktemp("redis")
    server = start_redis(free_port(), data_dir, appendonly=False, log_file=data_dir / "redis.log")
    yield server
    server.stop()


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "job_modules": TEST_JOB_MODULES,
        "log_format": "console",
        "log_level": "WARNING",
        "health_check_interval_seconds": 1,
        "shutdown_grace_seconds": 5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(redis_server: RedisProcess) -> Settings:
    return make_settings(redis_server.url)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = open_api_pool(settings)
    await pool.flushall()
    yield pool
    await pool.aclose()


@pytest.fixture
def registry(settings: Settings) -> Registry:
    """The jobs of the test settings; a test may change a spec here, and the app and workers it builds from
    this fixture see the change."""
    return load_registry(settings)


@asynccontextmanager
async def api_client(settings: Settings, registry: Registry | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, registry)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            yield client


@pytest.fixture
async def client(settings: Settings, registry: Registry, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings, registry) as http:
        yield http


def build_worker(settings: Settings, registry: Registry | None = None, **overrides: Any) -> PlatformWorker:
    """An in-process arq worker with the production options (no cron unless asked)."""
    options = worker_kwargs(settings, registry or load_registry(settings))
    options.update(cron_jobs=[], handle_signals=False, poll_delay=0.01)
    options.update(overrides)
    return PlatformWorker(**options)


@pytest.fixture
def run_burst_worker(settings: Settings, registry: Registry) -> Callable[..., Awaitable[PlatformWorker]]:
    """Run a worker until the queue is empty; returns it so tests can read its counters."""

    async def run(**overrides: Any) -> PlatformWorker:
        worker = build_worker(settings, registry, burst=True, poll_delay=0, **overrides)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker

    return run


@pytest.fixture
async def running_worker(settings: Settings, registry: Registry, redis: ArqRedis) -> AsyncIterator[PlatformWorker]:
    """A long-running in-process worker for the duration of one test."""
    worker = build_worker(settings, registry)
    task = asyncio.create_task(worker.async_run())
    yield worker
    worker.handle_sig(2)
    await asyncio.gather(task, return_exceptions=True)
    await worker.close()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
