"""The API of this tree without its security layer: the "before" of `python -m bench.security_cost`. Never serve
either app: each is a benchmark's baseline, nothing else.

The security layer is what issue 9 added and measures: the `Host` check and the security headers
(service/transport.py), keys, scopes and the rate limit (service/auth.py, service/limits.py), the body's size,
time, media type and strict parse (service/body.py), and the kwargs check in the route (exact JSON, the
published schema, size and depth: `_checked` in service/routes/jobs.py). Two baselines take it out:

- `bench.security_off:checks_off` (`--before checks-off`, the fair one): the guard middleware stays, with
  what is not the layer: the request's id (`X-Request-ID`, bound for logs and carried by the jobs it
  enqueues, core/correlation.py), the HTTP metrics (service/metrics.py), the route lookup they need, and
  the 500 answered with the request's id. Only the checks and the security headers are gone.
- `bench.security_off:app` (`--before unguarded`): no guard middleware at all, so issue 8's request ids,
  HTTP metrics and 500 handler go too; the difference is more than the layer.

Both drop the kwargs check, and the platform routes' own guard (`Guard.route`, which the middleware makes
them skip anyway), in this process.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.auth import RouteFacts
from service.guard import Guard
from service.routes import jobs


def _unchecked(*args: Any, **kwargs: Any) -> None:
    return None


async def _unguarded(self: Guard, route: Any, handle: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await handle(scope, receive, send)


class ChecksOff(Guard):
    """The guard with no checks and no security headers: ids, metrics and the 500 handler as served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transport.headers, self.transport.names = [], frozenset()

    async def _admit(
        self, app: ASGIApp, route: RouteFacts, scope: Scope, receive: Receive
    ) -> tuple[ASGIApp | None, Receive]:
        return app, receive


def _without_route_checks() -> None:
    """Every platform route (in this process) without the kwargs check and its own guard."""
    jobs._checked = _unchecked  # POST /v1/jobs looks it up at call time
    Guard.route = _unguarded  # type: ignore[method-assign]


def without_security_layer(app: FastAPI) -> FastAPI:
    """`app` (not yet started) without its guard, and every platform route (in this process) without its
    own guard and the kwargs check: a request the guard middleware checked is not checked again by its route,
    so an app that keeps its middleware is measured as it is served."""
    _without_route_checks()
    app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not Guard]  # type: ignore[comparison-overlap]
    return app


def without_checks(app: FastAPI) -> FastAPI:
    """`app` (not yet started) with its guard reduced to what is not the security layer (`ChecksOff`)."""
    _without_route_checks()
    for middleware in app.user_middleware:
        if middleware.cls is Guard:  # type: ignore[comparison-overlap]
            middleware.cls = ChecksOff  # type: ignore[assignment]
    return app


def __getattr__(name: str) -> FastAPI:  # `uvicorn bench.security_off:app`: built from the environment
    if name == "app":
        return without_security_layer(create_app())
    if name == "checks_off":
        return without_checks(create_app())
    raise AttributeError(name)
