"""JSON on the wire for jobs and results: nothing a stranger writes into Redis is ever unpickled.

arq stores a failed job's exception object in its result; JSON cannot hold one, so an exception is
written as an `{"__error__": {"type", "message"}}` marker and read back as a `JobError`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import BaseModel

ERROR_MARKER = "__error__"
ABORTED_ERROR_TYPE = "CancelledError"


class JobError(Exception):
    """A job's failure as read back from Redis: the original exception's type name and message."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message

    @property
    def aborted(self) -> bool:
        return self.type == ABORTED_ERROR_TYPE


def error_marker(exc: BaseException) -> dict[str, dict[str, str]]:
    if isinstance(exc, JobError):
        return {ERROR_MARKER: {"type": exc.type, "message": exc.message}}
    if isinstance(exc, asyncio.CancelledError):
        return {ERROR_MARKER: {"type": ABORTED_ERROR_TYPE, "message": str(exc) or "job was aborted"}}
    if isinstance(exc, TimeoutError):
        message = str(exc) or "job timed out"
        return {ERROR_MARKER: {"type": "TimeoutError", "message": message}}
    return {ERROR_MARKER: {"type": type(exc).__name__, "message": str(exc)}}


def _default(value: Any) -> Any:
    if isinstance(value, BaseException):
        return error_marker(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any) -> bytes:
    """Serialize a job or result dict to JSON bytes."""
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes) -> Any:
    """Parse JSON bytes; a result's error marker becomes a `JobError`. Anything not JSON raises."""
    decoded = orjson.loads(data)
    if isinstance(decoded, dict) and decoded.get("s") is False:
        result = decoded.get("r")
        marker = result.get(ERROR_MARKER) if isinstance(result, dict) else None
        if isinstance(marker, dict):
            decoded["r"] = JobError(str(marker.get("type", "Error")), str(marker.get("message", "")))
    return decoded
