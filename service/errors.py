"""Errors as precise JSON answers: bad input is a 4xx naming the field, a Redis that is lost, full
(OOM under `noeviction`) or read-only (after a failover) is a 503 with Retry-After, and nothing ever
returns a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from redis.exceptions import RedisError

from core.enqueue import DuplicateJob
from core.exact_json import Unencodable
from core.registry import UnknownFunction

log = structlog.get_logger("api")
RETRY_AFTER_S = 2


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


class UnknownFunctionAt(Exception):
    """A batch names an unregistered function at `loc`."""

    def __init__(self, error: UnknownFunction, loc: tuple[str | int, ...]) -> None:
        super().__init__(str(error))
        self.error = error
        self.loc = loc


def _detail(loc: list[Any], msg: str, type_: str) -> list[dict[str, Any]]:
    return [{"loc": loc, "msg": msg, "type": type_}]


async def unknown_function(request: Request, exc: UnknownFunction) -> JSONResponse:
    return JSONResponse({"detail": _detail(["body", "function"], str(exc), "unknown_function")}, 422)


async def unknown_function_at(request: Request, exc: UnknownFunctionAt) -> JSONResponse:
    return JSONResponse({"detail": _detail([*exc.loc, "function"], str(exc), "unknown_function")}, 422)


async def kwargs_invalid(request: Request, exc: KwargsInvalid) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, 422)


async def duplicate_job(request: Request, exc: DuplicateJob) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, 409)


async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
    log.warning("api.redis_unavailable", path=request.url.path, error=type(exc).__name__, message=str(exc))
    return JSONResponse(
        {"detail": f"Redis is unavailable ({type(exc).__name__}); retry shortly"},
        503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api.unexpected_error", path=request.url.path)
    return JSONResponse({"detail": "internal error; see the API logs"}, 500)


# The platform's own errors and their answers; `unexpected` is for the standalone app only.
PLATFORM_ERRORS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    UnknownFunction: unknown_function,
    UnknownFunctionAt: unknown_function_at,
    KwargsInvalid: kwargs_invalid,
    DuplicateJob: duplicate_job,
    RedisError: redis_unavailable,
}


def install_error_handlers(app: FastAPI) -> None:
    for exc_class, handler in PLATFORM_ERRORS.items():
        app.add_exception_handler(exc_class, handler)
    app.add_exception_handler(Exception, unexpected)


PLATFORM_ERROR_TYPES = tuple(PLATFORM_ERRORS)


class PlatformRoute(APIRoute):
    """The platform's routes answer its own errors themselves (as `install_error_handlers` would), so they
    behave the same inside any app that includes them: exception handlers belong to the app. One `try` per
    request; a router-level dependency doing the same costs far more (FastAPI solves it on every request)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except PLATFORM_ERROR_TYPES as exc:
                answer = next(h for cls, h in PLATFORM_ERRORS.items() if isinstance(exc, cls))
                return await answer(request, exc)

        return handle
