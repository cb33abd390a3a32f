"""Errors as precise JSON answers in one shape, `{"detail": [{"loc", "msg", "type"}]}`: bad input is a 4xx
naming the field, a Redis that is lost, full (OOM under `noeviction`) or read-only (after a failover) is a
503 with Retry-After, and nothing ever returns a traceback or echoes a large piece of the input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from core.chains import ChainInvalid
from core.enqueue import DuplicateJob
from core.exact_json import Unencodable
from core.redis import PoolExhausted
from core.registry import UnknownFunction

log = structlog.get_logger("api")
RETRY_AFTER_S = 2
MAX_PROBLEMS = 20  # a batch of 1,000 bad jobs answers with the first 20, not 400 KB
MAX_MSG_CHARS = 240
MAX_LOC_CHARS = 64  # a key in `loc` comes from the client: quote only its start
Loc = Sequence[str | int]

_TYPE_OF_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


def short(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem(loc: Loc, msg: str, type_: str) -> dict[str, Any]:
    return {
        "loc": [part if isinstance(part, int) else short(str(part), MAX_LOC_CHARS) for part in loc],
        "msg": short(msg, MAX_MSG_CHARS),
        "type": type_,
    }


def error_response(
    status: int, msg: str, type_: str | None = None, loc: Loc = (), headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape, for handlers and for the ASGI middlewares that answer before routing."""
    body = {"detail": [problem(loc, msg, type_ or _TYPE_OF_STATUS.get(status, "error"))]}
    return JSONResponse(body, status, headers=dict(headers) if headers else None)


def problems_response(status: int, problems: Iterable[dict[str, Any]]) -> JSONResponse:
    listed = [problem(p.get("loc", ()), str(p.get("msg", "")), str(p.get("type", "invalid"))) for p in problems]
    return JSONResponse({"detail": listed[:MAX_PROBLEMS]}, status)


class ApiError(HTTPException):
    """An HTTP error that says where (`loc`) and what kind (`type_`), in the one error shape."""

    def __init__(
        self,
        status: int,
        msg: str,
        *,
        loc: Loc = (),
        type_: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, msg, headers=dict(headers) if headers else None)
        self.loc = tuple(loc)
        self.type_ = type_ or _TYPE_OF_STATUS.get(status, "error")


def kwargs_errors(
    error: ValidationError | Unencodable | ValueError, loc: tuple[str | int, ...] = ("body", "kwargs")
) -> list[dict[str, Any]]:
    """422 detail entries for kwargs that failed their contract, each located in the request body."""
    if isinstance(error, ValidationError):
        return [
            {"loc": [*loc, *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in error.errors(include_url=False, include_input=False)
        ]
    if isinstance(error, Unencodable):
        return [{"loc": [*loc, *error.loc], "msg": error.reason, "type": "not_exact_json"}]
    if isinstance(error, ChainInvalid):  # located from the job's `then`, a sibling of its kwargs
        return [{**problem, "loc": [*loc[:-1], *problem["loc"]]} for problem in error.problems]
    return [{"loc": [*loc[:-1], "job_id"], "msg": str(error), "type": "value_error"}]


class KwargsInvalid(Exception):
    """A request's jobs failed their contracts; `detail` lists every error, each located in the body."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(detail)} invalid fields")
        self.detail = detail

    @classmethod
    def of(
        cls, error: ValidationError | Unencodable | ValueError, loc: tuple[str | int, ...] = ("body", "kwargs")
    ) -> KwargsInvalid:
        return cls(kwargs_errors(error, loc))


def _validation_problems(errors: Iterable[Mapping[str, Any]], prefix: Loc = ()) -> list[dict[str, Any]]:
    """pydantic's errors without `input`, `ctx` or `url`: those can echo megabytes, or hold NaN."""
    return [{"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]} for err in errors]


def _allowed_methods(request: Request) -> list[str]:
    """Every method the path serves; a literal path (`/v1/dead/requeue`) is not also `/v1/dead/{job_id}`."""
    matching = [
        route
        for route in iter_route_contexts(list(request.app.router.routes))
        if route.matches(request.scope)[0] is not Match.NONE
    ]
    literal = [route for route in matching if route.path_format == request.url.path]
    chosen = literal or [route for route in matching if route.path_format == matching[0].path_format]
    return sorted({method for route in chosen for method in (route.methods or ())})


async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    return problems_response(422, _validation_problems(exc.errors()))


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    loc = exc.loc if isinstance(exc, ApiError) else ()
    type_ = exc.type_ if isinstance(exc, ApiError) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette lists the methods of one route; a path may have several
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, str(exc.detail), type_, loc, headers)


async def unknown_function(request: Request, exc: UnknownFunction) -> JSONResponse:
    return error_response(422, str(exc), "unknown_function", ["body", "function"])


async def kwargs_invalid(request: Request, exc: KwargsInvalid) -> JSONResponse:
    return problems_response(422, exc.detail)


async def duplicate_job(request: Request, exc: DuplicateJob) -> JSONResponse:
    return error_response(409, str(exc), "duplicate_job", ["body", "job_id"])


def pool_exhausted_response(exc: PoolExhausted) -> JSONResponse:
    """Redis is healthy but every connection of this process is busy: say so, not "Redis is unavailable"."""
    return error_response(
        503,
        f"too many concurrent requests: {exc}; retry shortly",
        "pool_exhausted",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def pool_exhausted(request: Request, exc: PoolExhausted) -> JSONResponse:
    log.warning("api.pool_exhausted", path=request.url.path, message=str(exc))
    return pool_exhausted_response(exc)


async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
    log.warning("api.redis_unavailable", path=request.url.path, error=type(exc).__name__, message=str(exc))
    return error_response(
        503,
        f"Redis is unavailable ({type(exc).__name__}); retry shortly",
        "redis_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


UNEXPECTED_ERROR = "internal error; see the API logs"


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api.unexpected_error", path=request.url.path)
    return error_response(500, UNEXPECTED_ERROR, "internal_error")


# The platform's own errors and their answers, in the one error shape; `unexpected` is the standalone app's.
PLATFORM_ERRORS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    UnknownFunction: unknown_function,
    KwargsInvalid: kwargs_invalid,
    DuplicateJob: duplicate_job,
    PoolExhausted: pool_exhausted,  # before RedisError: a route's handler is the first that matches
    RedisError: redis_unavailable,
}
# What a platform route answers itself, inside any app: its own errors, and its request's validation and HTTP
# errors in the platform's shape rather than the host app's.
ROUTE_ERRORS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    RequestValidationError: request_invalid,
    StarletteHTTPException: http_error,
    **PLATFORM_ERRORS,
}
ROUTE_ERROR_TYPES = tuple(ROUTE_ERRORS)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    for exc_class, handler in PLATFORM_ERRORS.items():
        app.add_exception_handler(exc_class, handler)
    app.add_exception_handler(Exception, unexpected)


PARSED_BODY = "platform.parsed_body"  # service/body.py's: the body and its value, already read and parsed
GUARD_STATE = "guard"  # the lifespan state's key for the platform's route-level guard (service/guard.py)
GUARDED = "platform.guarded"  # set in an ASGI scope the guard middleware checked (service/guard.py)


class PlatformRoute(APIRoute):
    """The platform's routes answer its own errors themselves (as `install_error_handlers` would), so they
    behave the same inside any app that includes them: exception handlers belong to the app. One `try` per
    request; a router-level dependency doing the same costs far more (FastAPI solves it on every request).

    They are guarded inside any app too: `handle` runs the platform's guard (from the lifespan's state) around
    the route, at the ASGI level, so limits apply before the body is read, which a dependency cannot do (FastAPI
    reads the body before it solves dependencies). Without the platform's lifespan nothing is served."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get(GUARDED):  # the standalone app's middleware checked it already
            await super().handle(scope, receive, send)
            return
        guard = (scope.get("state") or {}).get(GUARD_STATE)
        if guard is None:
            msg = "the platform's lifespan is not running: FastAPI(lifespan=platform.lifespan())"
            await error_response(503, msg, "not_started")(scope, receive, send)
            return
        await guard.route(self, super().handle, scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            parsed = request.scope.get(PARSED_BODY)
            if parsed is not None:  # read and strictly parsed by the guard: FastAPI takes it as read
                request._body, request._json = parsed
            try:
                return await handler(request)
            except ROUTE_ERROR_TYPES as exc:
                answer = next(h for cls, h in ROUTE_ERRORS.items() if isinstance(exc, cls))
                return await answer(request, exc)

        return handle
