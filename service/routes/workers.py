"""`/v1/workers`: the worker processes whose heartbeat is alive."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from core.workers import live_workers
from service.deps import PoolDep
from service.errors import PlatformRoute
from service.models import WorkerJobsView, WorkerView

router = APIRouter(prefix="/v1/workers", tags=["workers"], route_class=PlatformRoute)


@router.get("")
async def list_workers(pool: PoolDep) -> list[WorkerView]:
    """Live workers with their host, pid and job counters; a dead one drops out within 30 s."""
    return [
        WorkerView(
            worker_id=w.worker_id,
            host=w.host,
            pid=w.pid,
            queue=w.queue,
            started_at=datetime.fromtimestamp(w.started_at, UTC),
            last_seen=datetime.fromtimestamp(w.last_seen, UTC),
            jobs=WorkerJobsView(**w.stats.model_dump()),
        )
        for w in await live_workers(pool)
    ]
