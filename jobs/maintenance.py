"""Cron jobs that keep the platform itself healthy."""

from __future__ import annotations

import time
from typing import Any

from core import keys, workers
from core.context import JobContext
from core.registry import CronSchedule, cron, every
from settings import Settings


def heartbeat_schedule(settings: Settings) -> CronSchedule:
    """Every HEARTBEAT_EVERY_SECONDS: every(n) is 0 (on the minute) for n >= 60."""
    beat = settings.heartbeat_every_seconds
    return {"second": every(beat), "minute": None if beat <= 60 else every(beat // 60)}


@cron(schedule_from=heartbeat_schedule, timeout=10, keep_result=3600)
async def record_heartbeat(ctx: JobContext) -> dict[str, Any]:
    """Prove the scheduler and a worker are alive; its last run shows in `GET /v1/cron`."""
    redis = ctx["redis"]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(ctx["queue_name"])
        pipe.zcard(keys.WORKERS)
        queued, live = await pipe.execute()
    return {"at": time.time(), "queued": queued, "workers": live}


@cron(minute=every(10), second=30, timeout=120, keep_result=3600)
async def prune_stale_records(ctx: JobContext) -> dict[str, int]:
    """Drop records the platform no longer needs: dead workers, and progress of jobs that are gone."""
    redis = ctx["redis"]
    cutoff = workers.stale_before(time.time(), ctx["settings"].health_check_interval_seconds)
    dead_workers = await redis.zremrangebyscore(keys.WORKERS, "-inf", cutoff)
    orphaned = 0
    async for key in redis.scan_iter(match=keys.progress("*"), count=500):
        job_id = key.decode().removeprefix(keys.progress(""))
        if not await redis.exists(keys.job(job_id), keys.result(job_id)):
            orphaned += await redis.delete(key)
    return {"dead_workers": dead_workers, "orphaned_progress": orphaned}
