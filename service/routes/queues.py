"""`/v1/queues`: how much work waits, is scheduled and is running."""

from __future__ import annotations

import time

from fastapi import APIRouter

from core.workers import live_workers
from service.deps import PoolDep, SettingsDep
from service.errors import PlatformRoute
from service.models import QueueView

router = APIRouter(prefix="/v1/queues", tags=["queues"], route_class=PlatformRoute)


@router.get("")
async def list_queues(pool: PoolDep, settings: SettingsDep) -> list[QueueView]:
    """The platform's queue: jobs due now, deferred, and running on live workers."""
    now_ms = time.time() * 1000
    async with pool.pipeline(transaction=False) as pipe:
        pipe.zcount(settings.queue_name, "-inf", now_ms)
        pipe.zcount(settings.queue_name, f"({now_ms}", "+inf")
        due, deferred = await pipe.execute()
    workers = [w for w in await live_workers(pool) if w.queue == settings.queue_name]
    running = sum(w.stats.ongoing for w in workers)
    return [
        QueueView(
            name=settings.queue_name,
            queued=max(0, due - running),
            deferred=deferred,
            in_progress=running,
            workers=len(workers),
        )
    ]
