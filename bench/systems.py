"""The systems under test: how each one's worker is started, how its producer enqueues, how it says ready."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bench.keys import READY_KEY
from core import keys
from core.enqueue import Enqueued, JobRequest, enqueue, enqueue_many
from core.redis import open_api_pool
from core.registry import JobSpec, load_job_modules
from settings import load_settings

JOB_MODULES = "jobs,bench.noop_jobs"
QUEUE = "arq:queue"  # arq's default queue name and the platform's default QUEUE_NAME


class Producer(Protocol):
    """Enqueues no-op jobs the way the system's users do."""

    async def enqueue(self, queue_name: str | None = None) -> str:
        """One job; returns its id."""
        ...

    async def enqueue_batch(self, count: int) -> int:
        """`count` jobs at once, the system's way of fanning out; returns how many were accepted."""
        ...


@dataclass
class ArqProducer:
    """Raw arq: `ArqRedis.enqueue_job` on a pool from `arq.create_pool` (pickle)."""

    pool: ArqRedis

    async def enqueue(self, queue_name: str | None = None) -> str:
        job = await self.pool.enqueue_job("noop", _queue_name=queue_name)
        if job is None:
            raise RuntimeError("arq refused a fresh job id")
        return job.job_id

    async def enqueue_batch(self, count: int) -> int:
        # arq has no batch call: concurrent enqueue_job calls are how its users fan out.
        jobs = await asyncio.gather(*(self.pool.enqueue_job("noop") for _ in range(count)))
        return sum(job is not None for job in jobs)


@dataclass
class PlatformProducer:
    """The platform: `core.enqueue.enqueue` with the registry spec (validates) on the API's own pool."""

    pool: ArqRedis
    spec: JobSpec

    async def enqueue(self, queue_name: str | None = None) -> str:
        return (await enqueue(self.pool, self.spec, {}, queue_name=queue_name)).job_id

    async def enqueue_batch(self, count: int) -> int:
        accepted = await enqueue_many(self.pool, [JobRequest(self.spec, {}) for _ in range(count)])
        return sum(isinstance(one, Enqueued) for one in accepted)


@dataclass(frozen=True)
class System:
    """One column of the table."""

    key: str
    label: str
    worker_argv: list[str]
    worker_env: dict[str, str] = field(default_factory=dict)
    platform: bool = False
    http_app: str | None = None  # the uvicorn app measured for this system, if any
    scaling: bool = True  # run the 2- and 4-worker drains
    drain_jobs_cap: int | None = None  # a smaller backlog for a system whose drain rate is capped by polling

    @asynccontextmanager
    async def producer(self, redis_url: str) -> AsyncIterator[Producer]:
        if self.platform:
            settings = load_settings(redis_url=redis_url, job_modules=JOB_MODULES.split(","))
            registry = load_job_modules(settings.job_modules)
            pool = open_api_pool(settings)
            try:
                yield PlatformProducer(pool, registry.get("noop"))
            finally:
                await pool.aclose()
        else:
            arq_pool = await create_pool(RedisSettings.from_dsn(redis_url))
            try:
                yield ArqProducer(arq_pool)
            finally:
                await arq_pool.aclose()

    def queue_companions(self, queue_name: str) -> list[str]:
        """Keys the producer writes next to a queue (the platform's wake tokens, where it has them)."""
        if self.platform and hasattr(keys, "wake"):
            return [keys.wake(queue_name)]
        return []

    async def ready_workers(self, redis: ArqRedis) -> int:
        """How many worker processes have finished start-up (the platform's heartbeat, or our SADD)."""
        if self.platform:
            return int(await redis.zcard(keys.WORKERS))
        return int(await redis.scard(READY_KEY))  # type: ignore[misc]


ARQ_DEFAULT = System(
    "arq-default",
    "arq defaults",
    ["-m", "arq", "bench.arq_workers.DefaultSettings"],
    scaling=False,
    drain_jobs_cap=1500,
)
ARQ_TUNED = System(
    "arq-tuned",
    "arq tuned",
    ["-m", "arq", "bench.arq_workers.TunedSettings", "--custom-log-dict", "bench.arq_workers.WARNING_LOGS"],
    http_app="bench.raw_app:app",
)
# The platform runs at its own defaults (it wakes on enqueue instead of polling), with arq tuned's
# concurrency and log level so the comparison is like for like.
PLATFORM_ENV = {"MAX_JOBS": "100", "LOG_LEVEL": "WARNING", "JOB_MODULES": JOB_MODULES}
PLATFORM = System(
    "platform",
    "platform",
    ["-m", "arq", "worker.WorkerSettings"],
    PLATFORM_ENV,
    platform=True,
    http_app="service.main:app",
)
SYSTEMS = [ARQ_DEFAULT, ARQ_TUNED, PLATFORM]
