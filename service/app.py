"""The standalone app: the platform's router and lifespan (`service.platform`) in an app of their own, behind
the guard (keys and scopes, limits, strict bodies: service/guard.py) and with the platform's OpenAPI document."""

from __future__ import annotations

from fastapi import FastAPI

from core.logging import configure_logging
from core.registry import Registry
from service.errors import install_error_handlers
from service.guard import Guard
from service.limits import RateLimiter
from service.openapi import install_openapi
from service.platform import Platform, State, operation_id
from settings import Settings, load_settings

__all__ = ["State", "create_app"]


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """Build the API for these settings (read from the environment when not given) and jobs (those of
    JOB_MODULES when not given)."""
    settings = settings or load_settings()
    configure_logging(settings)
    platform = Platform(settings, registry)
    app = FastAPI(
        title="Job platform",
        summary="Enqueue, schedule and inspect background jobs run by arq workers over Redis.",
        version="0.1.0",
        lifespan=platform.lifespan(),
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    install_error_handlers(app)
    platform.include_in(app)
    install_openapi(app, platform.registry)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    app.add_middleware(
        Guard, settings=settings, limiter=limiter, routes=lambda: app.router.routes, metrics=platform.http_metrics
    )
    return app
