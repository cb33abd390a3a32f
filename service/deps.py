"""The only glue between routes and the lifespan's state. `async def` on purpose: FastAPI runs a plain
`def` dependency in a worker thread, a hand-off per request that halved the API's throughput."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

import structlog
from arq.connections import ArqRedis
from fastapi import Depends, HTTPException, Request
from redis.exceptions import RedisError

from core.registry import Registry
from service.handle import Jobs
from settings import Settings

log = structlog.get_logger("api")


async def get_pool(request: Request) -> ArqRedis:
    return cast(ArqRedis, request.state.pool)


async def get_registry(request: Request) -> Registry:
    return cast(Registry, request.state.registry)


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.state.settings)


PoolDep = Annotated[ArqRedis, Depends(get_pool)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def _jobs_session(request: Request) -> AsyncIterator[Jobs]:
    """Request-scoped: its exit runs after the response was sent, which is when held jobs are released."""
    jobs = Jobs(request.state.pool, request.state.registry, request.state.settings, request.state.inflight)
    try:
        yield jobs
    except BaseException:
        # The route (or writing its on_success jobs) raised, or sending the response failed after a route that
        # succeeded: release in that last case only.
        await _settle(jobs, release=jobs.succeeded)
        raise
    await _settle(jobs, release=True)


async def _settle(jobs: Jobs, *, release: bool) -> None:
    try:
        await (jobs.release_held() if release else jobs.discard_held())
    except (RedisError, OSError) as exc:  # held jobs run when their hold runs out: late, never lost
        log.warning("jobs.settle_failed", release=release, error=type(exc).__name__, message=str(exc))


async def _jobs_for_route(jobs: Annotated[Jobs, Depends(_jobs_session)]) -> AsyncIterator[Jobs]:
    """Function-scoped: its exit runs when the route returned, before the response is sent."""
    try:
        yield jobs
    except BaseException:
        jobs.drop_pending()
        raise
    try:
        await jobs.write_pending()
    except (RedisError, OSError) as exc:
        log.warning("jobs.write_failed", error=type(exc).__name__, message=str(exc))
        raise HTTPException(
            503, "Redis is unavailable; the request's jobs were not written", {"Retry-After": "2"}
        ) from None
    jobs.succeeded = True


JobsDep = Annotated[Jobs, Depends(_jobs_for_route, scope="function")]
