"""The one middleware in front of every route: Host and security headers (service/transport.py), then who
is calling and what they may do (service/auth.py), then the body (service/body.py). Routes see only what
passed all three. Around them, for every request: its id (`X-Request-ID`, core/correlation.py), bound for its
log lines and the jobs it enqueues and returned on every answer, and its count and duration by route template
(service/metrics.py).

One ASGI layer on purpose: each coroutine frame between uvicorn and a route is walked again on every await
the route makes (each Redis round trip), so three stacked middlewares cost several times what their checks
do; the checks here return instead of wrapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from core import correlation
from service.auth import Authorizer
from service.body import BodyReader
from service.errors import UNEXPECTED_ERROR, error_response
from service.limits import RateLimiter
from service.metrics import UNMATCHED_ROUTE, HttpMetrics
from service.transport import Sent, TransportPolicy
from settings import Settings

log = structlog.get_logger("api")
CLIENT_LEFT = 499  # the client went away before its body arrived: no answer was sent


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        limiter: RateLimiter,
        routes: Callable[[], Any],
        metrics: HttpMetrics | None = None,
    ) -> None:
        self.app = app
        self.transport = TransportPolicy(settings)
        self.authorizer = Authorizer(settings, limiter, routes)
        self.body = BodyReader(settings)
        self.metrics = metrics or HttpMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._guard(scope, receive, send, self.authorizer.route_of(scope))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, traceparent = correlation.from_headers(scope["headers"])
        token = correlation.current.set(correlation.Correlation(request_id, traceparent))
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        response = Sent()
        route = self.authorizer.route_of(scope)
        sending = self.transport.sending_headers(send, request_id.encode(), response)
        try:
            if not await self._guard(scope, receive, sending, route):
                response.status = CLIENT_LEFT
        except Exception:
            if response.started:
                raise
            # Answered here, not by Starlette's outermost handler: the 500 gets the request's id and the
            # security headers, and its log line the request's id.
            log.exception("api.unexpected_error", path=scope["path"])
            await error_response(500, UNEXPECTED_ERROR, "internal_error")(scope, receive, sending)
        finally:
            template = getattr(route, "path_format", None) or UNMATCHED_ROUTE
            self.metrics.observe(scope["method"], template, response.status, time.perf_counter() - started)
            structlog.contextvars.reset_contextvars(**bound)
            correlation.current.reset(token)

    async def _guard(self, scope: Scope, receive: Receive, send: Send, route: Any) -> bool:
        """Pass the request on, or answer it with a refusal; False when the client left while sending its body."""
        refusal = self.transport.refusal(scope) or await self.authorizer.refusal(scope, route)
        if refusal is None and scope["type"] == "http":
            refusal, receive_body = await self.body.read(scope, receive)
            if refusal is None and receive_body is None:
                return False
            receive = receive_body or receive
        if refusal is not None and scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return True
        if refusal is not None:
            await refusal(scope, receive, send)
            return True
        await self.app(scope, receive, send)
        return True
