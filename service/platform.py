"""The platform as parts of any FastAPI app: a router (every `/v1/...` route, the typed ones included) and a
lifespan (one pool and one event hub per process), composed with the app's own lifespan. The standalone app
(`service.app`) is built from the same two parts.

```python
platform = Platform()                          # settings from the environment, jobs from JOB_MODULES
app = FastAPI(lifespan=platform.lifespan(my_lifespan))   # or platform.lifespan() without one of your own
app.include_router(platform.router)
```
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypedDict

import structlog
from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from core.redis import log_redis_in_use, open_api_pool, redacted
from core.registry import Registry, load_registry
from service import docs
from service.auth import AuthMode, auth_mode
from service.dashboard import routes as dashboard
from service.event_hub import EventHub
from service.guard import Guard
from service.held_releases import HeldReleases
from service.inflight import InFlight
from service.limits import WaitSlots
from service.metrics import HttpMetrics
from service.routes import cron, dead, events, functions, health, jobs, metrics, queues, typed, workers
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
    releases: HeldReleases | None  # None: HOLD_RELEASE_WINDOW_MS is 0, each request releases its own
    waits: WaitSlots
    events: EventHub
    metrics: HttpMetrics
    guard: Guard  # GUARD_STATE


def log_auth_mode(settings: Settings) -> None:
    """Say at start-up who this API will answer."""
    mode = auth_mode(settings)
    if mode is AuthMode.keys:
        log.info("api.auth", mode=mode.value, keys=[entry.name for entry in settings.api_keys])
        if settings.allow_anonymous:
            log.warning("api.auth_anonymous_ignored", reason="API_KEYS is set, so every request needs a key")
    elif mode is AuthMode.loopback:
        log.info("api.auth", mode=mode.value, note="no API_KEYS: only clients on this host are served")
    else:
        log.warning("api.auth", mode=mode.value, note="ALLOW_ANONYMOUS: anyone who reaches the API may use it")


def operation_id(route: APIRoute) -> str:
    """Readable operation ids (what generated clients name their methods): the route function's name."""
    return route.name


class Platform:
    """The platform's router and lifespan for these settings and jobs."""

    def __init__(self, settings: Settings | None = None, registry: Registry | None = None) -> None:
        self.settings = settings or load_settings()
        self.registry = registry or load_registry(self.settings)
        self.http_metrics = HttpMetrics()  # filled by the guard (service/guard.py): the app's or the routes' own
        # FastAPI tries routes in order, each at a cost: the enqueue route first, the documentation-only
        # operations of the typed endpoints (never matched) last.
        dispatch, document = typed.routers(self.registry)
        self.routers: tuple[APIRouter, ...] = (jobs.router, dispatch, dead.router, functions.router, cron.router,
                                               queues.router, workers.router, events.router, health.router,
                                               metrics.router, docs.router, dashboard.router, document)  # fmt: skip
        # Its routes check themselves in any app (service/guard.py), counted in the platform's HTTP metrics.
        self.guard = Guard.for_routes(self.settings, self.http_metrics)
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
            # Not "started": uvicorn binds its socket after the lifespan starts, and that can still fail.
            await log_redis_in_use(pool, settings, log, "api.redis_connected")
        except (RedisError, OSError) as exc:
            log.warning("api.redis_unavailable_at_start", redis=redacted(settings.redis_url), error=str(exc))
        log_auth_mode(settings)
        hub = EventHub(settings, pool)
        await hub.start()
        window_s = settings.hold_release_window_ms / 1000
        releases = HeldReleases(pool, settings.queue_name, window_s, inflight) if window_s > 0 else None
        # What start-up built (modules, routes, schemas, the registry) lives as long as the process: out of the
        # collector's sight, a full collection walks only what requests made (50-65 ms fewer every few thousand
        # requests on the benchmark machine, and steadier latency).
        gc.freeze()
        try:
            yield {
                "pool": pool,
                "registry": self.registry,
                "settings": settings,
                "inflight": inflight,
                "releases": releases,
                "waits": WaitSlots(settings.max_waits_per_key),
                "events": hub,
                "metrics": self.http_metrics,
                "guard": self.guard,  # service.errors.GUARD_STATE: what PlatformRoute looks for
            }
        finally:
            await hub.stop()
            if releases is not None:
                await releases.flush()
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
