"""The app factory and its lifespan: one arq pool per process, opened on start, closed on exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import structlog
from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.exceptions import RedisError

from core.logging import configure_logging
from core.redis import log_redis_in_use, open_api_pool, redacted
from core.registry import Registry, load_registry
from service import docs
from service.auth import AuthMode, auth_mode
from service.errors import install_error_handlers
from service.guard import Guard
from service.limits import RateLimiter, WaitSlots
from service.openapi import install_openapi
from service.routes import cron, dead, functions, health, jobs, queues, workers
from settings import Settings, load_settings

log = structlog.get_logger("api")


class State(TypedDict):
    pool: ArqRedis
    registry: Registry
    settings: Settings
    waits: WaitSlots


def _log_auth_mode(settings: Settings) -> None:
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


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """Build the API for these settings (read from the environment when not given) and jobs (those of
    JOB_MODULES when not given)."""
    settings = settings or load_settings()
    configure_logging(settings)
    registry = registry or load_registry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        pool = open_api_pool(settings)
        try:
            await pool.ping()
            # Not "started": uvicorn binds its socket after the lifespan starts, and that can still fail.
            await log_redis_in_use(pool, settings, log, "api.redis_connected")
        except (RedisError, OSError) as exc:
            log.warning("api.redis_unavailable_at_start", redis=redacted(settings.redis_url), error=str(exc))
        _log_auth_mode(settings)
        try:
            yield {
                "pool": pool,
                "registry": registry,
                "settings": settings,
                "waits": WaitSlots(settings.max_waits_per_key),
            }
        finally:
            await pool.aclose()
            log.info("api.stopped")

    app = FastAPI(
        title="Job platform",
        summary="Enqueue, schedule and inspect background jobs run by arq workers over Redis.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=lambda route: route.name,
    )
    install_error_handlers(app)
    for module in (jobs, dead, functions, cron, queues, workers, health, docs):
        app.include_router(module.router)
    install_openapi(app, registry)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    app.add_middleware(Guard, settings=settings, limiter=limiter, routes=lambda: app.router.routes)
    return app
