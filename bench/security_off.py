"""The API of this tree without its security layer, the "before" of `python -m bench.security_cost
--before unguarded`: no guard (keys, Host, rate limit, body size, time, media type and strict parse) and no
kwargs check (exact JSON, published schema, size and depth), everything else the same code.

`uvicorn bench.security_off:app`. Never serve it: it is a benchmark's baseline, nothing else.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from service.app import create_app
from service.guard import Guard
from service.routes import jobs


def _unchecked(*args: Any, **kwargs: Any) -> None:
    return None


async def _unguarded(self: Guard, route: Any, handle: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await handle(scope, receive, send)


jobs._checked = _unchecked  # POST /v1/jobs looks it up at call time
Guard.route = _unguarded  # type: ignore[method-assign]  # the platform routes' own guard
app = create_app()
app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not Guard]
