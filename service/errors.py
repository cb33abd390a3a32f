"""Errors as precise JSON answers: bad input is a 4xx naming the field, a Redis that is lost, full
(OOM under `noeviction`) or read-only (after a failover) is a 503 with Retry-After, and nothing ever
returns a traceback."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import RedisError

from core.enqueue import DuplicateJob
from core.registry import UnknownFunction

log = structlog.get_logger("api")
RETRY_AFTER_S = 2


class KwargsInvalid(Exception):
    """A job's kwargs failed its signature's validation; `loc` says where the kwargs were in the body."""

    def __init__(self, error: ValidationError, loc: tuple[str | int, ...] = ("body", "kwargs")) -> None:
        super().__init__(str(error))
        self.error = error
        self.loc = loc


class UnknownFunctionAt(Exception):
    """A batch names an unregistered function at `loc`."""

    def __init__(self, error: UnknownFunction, loc: tuple[str | int, ...]) -> None:
        super().__init__(str(error))
        self.error = error
        self.loc = loc


def _detail(loc: list[Any], msg: str, type_: str) -> list[dict[str, Any]]:
    return [{"loc": loc, "msg": msg, "type": type_}]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UnknownFunction)
    async def unknown_function(request: Request, exc: UnknownFunction) -> JSONResponse:
        return JSONResponse({"detail": _detail(["body", "function"], str(exc), "unknown_function")}, 422)

    @app.exception_handler(UnknownFunctionAt)
    async def unknown_function_at(request: Request, exc: UnknownFunctionAt) -> JSONResponse:
        return JSONResponse({"detail": _detail([*exc.loc, "function"], str(exc), "unknown_function")}, 422)

    @app.exception_handler(KwargsInvalid)
    async def kwargs_invalid(request: Request, exc: KwargsInvalid) -> JSONResponse:
        detail = [
            {"loc": [*exc.loc, *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.error.errors(include_url=False, include_input=False)
        ]
        return JSONResponse({"detail": detail}, 422)

    @app.exception_handler(DuplicateJob)
    async def duplicate_job(request: Request, exc: DuplicateJob) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 409)

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        log.warning("api.redis_unavailable", path=request.url.path, error=type(exc).__name__, message=str(exc))
        return JSONResponse(
            {"detail": f"Redis is unavailable ({type(exc).__name__}); retry shortly"},
            503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unexpected_error", path=request.url.path)
        return JSONResponse({"detail": "internal error; see the API logs"}, 500)
