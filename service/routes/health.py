"""Liveness (`/health`, no Redis call) and readiness (`/ready`, Redis and a live worker)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from core.workers import live_workers
from service.auth import public
from service.deps import PoolDep
from service.errors import PlatformRoute
from service.models import Health, Readiness

router = APIRouter(tags=["health"], route_class=PlatformRoute)


@router.get("/health")
@public
async def health() -> Health:
    """The process is up. Never touches Redis, so it stays fast during an outage."""
    return Health(status="ok")


@router.get("/ready", responses={503: {"model": Readiness, "description": "Redis down or no live worker"}})
@public
async def ready(pool: PoolDep, response: Response) -> Readiness:
    """Ready when Redis answers and at least one worker's heartbeat is alive."""
    try:
        await pool.ping()
        workers = len(await live_workers(pool))
    except (RedisError, OSError) as exc:
        response.status_code = 503
        response.headers["Retry-After"] = "2"
        return Readiness(status="unavailable", redis=f"unreachable ({type(exc).__name__})", workers=0)
    if workers == 0:
        response.status_code = 503
        return Readiness(status="unavailable", redis="ok", workers=0)
    return Readiness(status="ok", redis="ok", workers=workers)
