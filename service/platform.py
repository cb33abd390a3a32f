"""The platform as parts of any FastAPI app: a router (every `/v1/...` route, the typed ones included) and a
lifespan (one pool per process), composed with the app's own lifespan. The standalone app (`service.app`) is
built from the same two parts.

```python
platform = Platform()                          # settings from the environment, jobs from JOB_MODULES
app = FastAPI(lifespan=platform.lifespan(my_lifespan))   # or platform.lifespan() without one of your own
app.include_router(platform.router)
```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypedDict

import structlog
from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from core.redis import open_api_pool, redacted
from core.registry import Registry, load_registry
from service.handle import InFlight
from service.routes import cron, dead, functions, health, jobs, queues, typed, workers
from settings import Settings, load_settings

log = structlog.get_logger("api")
SHUTDOWN_DRAIN_S = 10.0
# An app's own lifespan (its state, if it yields one, is kept); the composed one always yields a state.
OwnLifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Mapping[str, Any]]]


class State(TypedDict):
    pool: ArqRedis
    registry: Registry
    settings: Settings
    inflight: InFlight


def operation_id(route: APIRoute) -> str:
    """Readable operation ids (what generated clients name their methods): the route function's name."""
    return route.name


class Platform:
    """The platform's router and lifespan for these settings and jobs."""

    def __init__(self, settings: Settings | None = None, registry: Registry | None = None) -> None:
        self.settings = settings or load_settings()
        self.registry = registry or load_registry(self.settings)
        # FastAPI tries routes in order, each at a cost: the enqueue route first, the documentation-only
        # operations of the typed endpoints (never matched) last.
        dispatch, document = typed.routers(self.registry)
        self.routers: tuple[APIRouter, ...] = (jobs.router, dispatch, dead.router, functions.router, cron.router,
                                               queues.router, workers.router, health.router, document)  # fmt: skip
        self.router = APIRouter()
        for router in self.routers:
            self.router.include_router(router, generate_unique_id_function=operation_id)

    def include_in(self, app: FastAPI) -> None:
        """`app.include_router(platform.router)` one level flatter: FastAPI 0.16x matches every level of
        nested routers on each request (about 20 µs a level here), so the standalone app includes the parts."""
        for router in self.routers:
            app.include_router(router, generate_unique_id_function=operation_id)

    @asynccontextmanager
    async def _state(self) -> AsyncIterator[State]:
        settings = self.settings
        pool = open_api_pool(settings)
        inflight = InFlight()
        try:
            await pool.ping()
            log.info("api.started", redis=redacted(settings.redis_url), queue=settings.queue_name)
        except (RedisError, OSError) as exc:
            log.warning("api.redis_unavailable_at_start", redis=redacted(settings.redis_url), error=str(exc))
        try:
            yield {"pool": pool, "registry": self.registry, "settings": settings, "inflight": inflight}
        finally:
            if not await inflight.drain(SHUTDOWN_DRAIN_S):
                log.warning("api.writes_abandoned", count=inflight.count)
            await pool.aclose()
            log.info("api.stopped")

    def lifespan(self, inner: OwnLifespan | None = None) -> Lifespan:
        """The app's lifespan: the platform's pool around `inner` (the app's own), their states merged."""

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
            async with self._state() as state:
                if inner is None:
                    yield dict(state)
                    return
                async with inner(app) as own:
                    yield {**(own or {}), **state}

        return lifespan
