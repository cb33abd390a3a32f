"""`/v1/queues`: how much work waits, is scheduled and is running, how long the oldest job has waited, and how
much was done lately."""

from __future__ import annotations

import time

from arq.connections import ArqRedis
from fastapi import APIRouter

from core import keys
from core.workers import live_workers
from service.deps import PoolDep, SettingsDep
from service.errors import PlatformRoute
from service.models import QueueView

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=PlatformRoute)
# Running jobs stay on the queue until they end: how many due ids to look past for the oldest one waiting.
OLDEST_LOOKAHEAD = 200
HOUR_MS = 3_600_000


async def _oldest_waiting_ms(pool: ArqRedis, queue_name: str, now_ms: float) -> float | None:
    """The due score of the oldest job on the queue that no worker holds (a running job has a lease)."""
    due = await pool.zrangebyscore(queue_name, "-inf", now_ms, start=0, num=OLDEST_LOOKAHEAD, withscores=True)
    if not due:
        return None
    async with pool.pipeline(transaction=False) as pipe:
        for job_id, _ in due:
            pipe.exists(keys.in_progress(job_id.decode()))
        held = await pipe.execute()
    return next((score for (_, score), running in zip(due, held, strict=True) if not running), None)


async def _finished(pool: ArqRedis, queue_name: str, now_ms: float) -> tuple[int, int]:
    """Jobs ended in the last minute and hour, from the finish script's buckets (the current, partial bucket
    counts in both)."""
    bucket_ms = keys.THROUGHPUT_BUCKET_MS
    current = int(now_ms // bucket_ms)
    buckets = range(current - HOUR_MS // bucket_ms + 1, current + 1)
    counts = [int(n or 0) for n in await pool.mget([keys.throughput(queue_name, b) for b in buckets])]
    per_minute = 60_000 // bucket_ms
    return sum(counts[-per_minute:]), sum(counts)


@router.get("")
async def list_queues(pool: PoolDep, settings: SettingsDep) -> list[QueueView]:
    """The platform's queue: jobs due now, deferred, and running on live workers; the age of the oldest job
    waiting; jobs ended in the last minute and hour."""
    now_ms = time.time() * 1000
    async with pool.pipeline(transaction=False) as pipe:
        pipe.zcount(settings.queue_name, "-inf", now_ms)
        pipe.zcount(settings.queue_name, f"({now_ms}", "+inf")
        due, deferred = await pipe.execute()
    workers = [w for w in await live_workers(pool) if w.queue == settings.queue_name]
    running = sum(w.stats.ongoing for w in workers)
    oldest = await _oldest_waiting_ms(pool, settings.queue_name, now_ms) if due else None
    last_minute, last_hour = await _finished(pool, settings.queue_name, now_ms)
    return [
        QueueView(
            name=settings.queue_name,
            queued=max(0, due - running),
            deferred=deferred,
            in_progress=running,
            workers=len(workers),
            oldest_waiting_age_s=round(max(0.0, now_ms - oldest) / 1000, 3) if oldest is not None else None,
            finished_last_minute=last_minute,
            finished_last_hour=last_hour,
        )
    ]
