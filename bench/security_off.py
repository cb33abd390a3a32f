"""The API of this tree without its security layer, the "before" of `python -m bench.security_cost
--before unguarded`: no guard (keys, Host, rate limit, body size, time, media type and strict parse) and no
kwargs check (exact JSON, published schema, size and depth), everything else the same code.

`uvicorn bench.security_off:app`. Never serve it: it is a benchmark's baseline, nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.guard import Guard
from service.routes import jobs


def _unchecked(*args: Any, **kwargs: Any) -> None:
    return None


async def _unguarded(self: Guard, route: Any, handle: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await handle(scope, receive, send)


def without_security_layer(app: FastAPI) -> FastAPI:
    """`app` (not yet started) without its guard, and every platform route (in this process) without its
    own guard and the kwargs check: a request the guard middleware checked is not checked again by its route,
    so an app that keeps its middleware is measured as it is served."""
    jobs._checked = _unchecked  # POST /v1/jobs looks it up at call time
    Guard.route = _unguarded  # type: ignore[method-assign]
    app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not Guard]  # type: ignore[comparison-overlap]
    return app


def __getattr__(name: str) -> FastAPI:  # `uvicorn bench.security_off:app`: built from the environment
    if name == "app":
        return without_security_layer(create_app())
    raise AttributeError(name)
