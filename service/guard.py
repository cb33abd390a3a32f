"""The one middleware in front of every route: Host and security headers (service/transport.py), then who
is calling and what they may do (service/auth.py), then the body (service/body.py). Routes see only what
passed all three.

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
from service.limits import RateLimiter
from service.transport import TransportPolicy
from settings import Settings


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings, limiter: RateLimiter, routes: Callable[[], Any]) -> None:
        self.app = app
        self.transport = TransportPolicy(settings)
        self.authorizer = Authorizer(settings, limiter, routes)
        self.body = BodyReader(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            send = self.transport.sending_headers(send)
        refusal = self.transport.refusal(scope) or await self.authorizer.refusal(scope)
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
        await self.app(scope, receive, send)
