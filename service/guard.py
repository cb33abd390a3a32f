"""The one middleware in front of every route: Host and security headers (service/transport.py), then who
is calling and what they may do (service/auth.py), then the body (service/body.py). Routes see only what
passed all three.

The standalone app runs it in front of everything. In a user's app that mounted the platform, each platform
route runs the same checks itself (`Guard.route`, called by service/errors.py's PlatformRoute with the guard
the platform's lifespan put in the request's state), so the platform's routes are guarded without the user
wiring a middleware, and the user's own routes are left alone. A request the middleware already checked is
not checked again.

One ASGI layer on purpose: each coroutine frame between uvicorn and a route is walked again on every await
the route makes (each Redis round trip), so three stacked middlewares cost several times what their checks
do; the checks here return instead of wrapping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth import Authorizer
from service.body import BodyReader
from service.errors import GUARDED
from service.limits import RateLimiter
from service.transport import TransportPolicy
from settings import Settings


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a route-level guard has no app of its own: use Guard.route")


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings, limiter: RateLimiter, routes: Callable[[], Any]) -> None:
        self.app = app
        self.transport = TransportPolicy(settings)
        self.authorizer = Authorizer(settings, limiter, routes)
        self.body = BodyReader(settings)

    @classmethod
    def for_routes(cls, settings: Settings) -> Guard:
        """The guard a mounted platform's routes run themselves (`route`)."""
        return cls(_no_app, settings, RateLimiter(settings.rate_limit_per_minute), lambda: ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[GUARDED] = True
        await self._checked(self.app, None, scope, receive, send)

    async def route(self, route: Any, handle: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `handle` (the platform route `route`) behind the same checks, unless the middleware ran them."""
        if scope.get(GUARDED):
            await handle(scope, receive, send)
            return
        await self._checked(handle, route, scope, receive, send)

    async def _checked(self, app: ASGIApp, route: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = self.transport.sending_headers(send)
        refusal = self.transport.refusal(scope) or await self.authorizer.refusal(scope, route)
        if refusal is None and scope["type"] == "http":
            refusal, receive_body = await self.body.read(scope, receive)
            if refusal is None and receive_body is None:
                return  # the client left while sending its body
            receive = receive_body or receive
        if refusal is not None and scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await app(scope, receive, send)
