"""Everything `worker.py` hands arq's Worker (our `PlatformWorker`), built from settings and the
registry in one place, so the real `arq worker.WorkerSettings` process and the tests' in-process
workers run exactly the same setup."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import UTC
from typing import Any

import structlog

from core import codec, workers
from core.context import JobContext
from core.execution import arq_cron_job, arq_function
from core.redis import check_redis_settings, open_worker_pool, redacted
from core.registry import Registry
from settings import Settings

log = structlog.get_logger("worker")


def worker_kwargs(settings: Settings, registry: Registry) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (also the attributes of `WorkerSettings`)."""

    async def on_startup(ctx: JobContext) -> None:
        info = workers.new_worker_info(settings.queue_name)
        ctx["stats"] = info.stats
        heartbeat = asyncio.create_task(
            workers.beat_forever(ctx["redis"], info, settings.health_check_interval_seconds)
        )
        ctx_any: dict[str, Any] = ctx  # type: ignore[assignment]
        ctx_any["_worker_info"], ctx_any["_heartbeat"] = info, heartbeat
        log.info(
            "worker.started",
            worker_id=info.worker_id,
            queue=settings.queue_name,
            redis=redacted(settings.redis_url),
            functions=sorted(registry.jobs),
            cron_jobs=sorted(registry.crons),
            max_jobs=settings.max_jobs,
        )

    async def on_shutdown(ctx: JobContext) -> None:
        ctx_any: dict[str, Any] = ctx  # type: ignore[assignment]
        heartbeat: asyncio.Task[None] | None = ctx_any.get("_heartbeat")
        if heartbeat is not None:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat
            await workers.forget(ctx["redis"], ctx_any["_worker_info"])
        log.info("worker.stopped")

    async def on_job_start(ctx: JobContext) -> None:
        # arq runs this inside the job's own task, so the binding reaches every log line of the job.
        structlog.contextvars.bind_contextvars(job_id=ctx["job_id"], try_=ctx["job_try"])

    return {
        "functions": [arq_function(spec, settings) for spec in registry.jobs.values()],
        "cron_jobs": [arq_cron_job(spec, settings) for spec in registry.crons.values()],
        "ctx": {"settings": settings, "queue_name": settings.queue_name},
        "poll_delay": settings.poll_delay_seconds,
        "redis_pool": open_worker_pool(settings),
        "redis_settings": check_redis_settings(settings),  # read only by `arq --check`
        "queue_name": settings.queue_name,
        "max_jobs": settings.max_jobs,
        "job_timeout": settings.job_timeout_seconds,
        "keep_result": settings.keep_result_seconds,
        "max_tries": settings.max_tries,
        "job_serializer": codec.dumps,
        "job_deserializer": codec.loads,
        "allow_abort_jobs": True,
        "job_completion_wait": settings.shutdown_grace_seconds,
        "health_check_interval": settings.health_check_interval_seconds,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": on_job_start,
        "log_results": False,
        "timezone": UTC,
    }
