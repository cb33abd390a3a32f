"""The one middleware in front of every route: Host and security headers (service/transport.py), then who
is calling and what they may do (service/auth.py), then the body (service/body.py). Routes see only what
passed all three. Around them, for every request: its id (`X-Request-ID`, core/correlation.py), bound for its
log lines and the jobs it enqueues and returned on every answer, and its count and duration by route template
(service/metrics.py).

The standalone app runs it in front of everything. In a user's app that mounted the platform, each platform
route runs the same checks itself (`Guard.route`, called by service/errors.py's PlatformRoute with the guard
the platform's lifespan put in the request's state), so the platform's routes are guarded without the user
wiring a middleware, and the user's own routes are left alone. A request the middleware already checked is
not checked again.

One ASGI layer on purpose: each coroutine frame between uvicorn and a route is walked again on every await
the route makes (each Redis round trip), so three stacked middlewares cost several times what their checks
do. For the same reason the guard adds one frame, not three: `__call__` and `route` return the request's
coroutine instead of awaiting it, and the checks (`_admit`) end before the app starts, naming what serves
the request (the app, or the refusal) instead of calling it themselves.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from core import correlation
from service.auth import PENDING, Authorizer, RouteFacts
from service.body import BodyReader
from service.errors import GUARDED, UNEXPECTED_ERROR, error_response
from service.limits import RateLimiter
from service.metrics import UNMATCHED_ROUTE, HttpMetrics
from service.transport import Sent, TransportPolicy
from settings import Settings

log = structlog.get_logger("api")
CLIENT_LEFT = 499  # the client went away before its body arrived: no answer was sent


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a route-level guard has no app of its own: use Guard.route")


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

    @classmethod
    def for_routes(cls, settings: Settings, metrics: HttpMetrics | None = None) -> Guard:
        """The guard a mounted platform's routes run themselves (`route`)."""
        return cls(_no_app, settings, RateLimiter(settings.rate_limit_per_minute), lambda: (), metrics)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] not in ("http", "websocket"):
            return self.app(scope, receive, send)
        scope[GUARDED] = True
        return self._observed(self.app, self.authorizer.route_of(scope), scope, receive, send)

    def route(self, route: Any, handle: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Run `handle` (the platform route `route`) behind the same checks, unless the middleware ran them."""
        if scope.get(GUARDED):
            return handle(scope, receive, send)
        return self._observed(handle, self.authorizer.facts_of(route), scope, receive, send)

    async def _observed(self, app: ASGIApp, route: RouteFacts, scope: Scope, receive: Receive, send: Send) -> None:
        """The checks and then the app, inside the request's id, its count and duration, and a 500 answered here."""
        if scope["type"] == "websocket":
            target, receive = await self._admit(app, route, scope, receive)
            if target is not None:
                await target(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, traceparent = correlation.from_headers(scope["headers"])
        token = correlation.current.set(correlation.Correlation(request_id, traceparent))
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        response = Sent()
        sending = self.transport.sending_headers(send, request_id.encode(), response)
        try:
            target, receive = await self._admit(app, route, scope, receive)
            if target is None:
                response.status = CLIENT_LEFT
            else:
                await target(scope, receive, sending)
        except Exception:
            if response.started:
                raise
            # Answered here, not by Starlette's outermost handler: the 500 gets the request's id and the
            # security headers, and its log line the request's id.
            log.exception("api.unexpected_error", path=scope["path"])
            await error_response(500, UNEXPECTED_ERROR, "internal_error")(scope, receive, sending)
        finally:
            self.metrics.observe(
                scope["method"], route.template or UNMATCHED_ROUTE, response.status, time.perf_counter() - started
            )
            structlog.contextvars.reset_contextvars(**bound)
            correlation.current.reset(token)

    async def _admit(
        self, app: ASGIApp, route: RouteFacts, scope: Scope, receive: Receive
    ) -> tuple[ASGIApp | None, Receive]:
        """What serves the request and the `receive` it gets: `app` (the body, read and checked, replayed to it),
        or the answer that refuses the request; (None, receive) when the client left while sending its body."""
        refusal = self.transport.refusal(scope) or self.authorizer.admit_now(scope, route)
        if refusal is PENDING:
            refusal = await self.authorizer.refusal(scope, route)
        if scope["type"] == "websocket":
            return (app if refusal is None else _policy_violation), receive
        if refusal is not None:
            return refusal, receive
        refusal, receive_body = await self.body.read(scope, receive)
        if refusal is not None:
            return refusal, receive
        return (None, receive) if receive_body is None else (app, receive_body)


async def _policy_violation(scope: Scope, receive: Receive, send: Send) -> None:
    """A refused websocket: closed with 1008 (policy violation)."""
    await send({"type": "websocket.close", "code": 1008})
