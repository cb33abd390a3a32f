"""JSON on the wire for jobs and results: nothing a stranger writes into Redis is ever unpickled.

arq stores a failed job's exception object in its result; JSON cannot hold one, so a failure is written as
an `{"__error__": {"type", "message", "kind", "traceback"}}` marker and read back as a `JobError`.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel

ERROR_MARKER = "__error__"


class ErrorKind(StrEnum):
    """Why a try failed, in the platform's own stable words (the `kind` of every error a client sees)."""

    exception = "exception"  # the job raised; `type` is the exception's class name
    timeout = "timeout"  # it ran past its timeout
    aborted = "aborted"  # a client aborted it
    invalid_arguments = "invalid_arguments"  # its stored kwargs no longer match its signature
    unencodable_result = "unencodable_result"  # it returned something JSON cannot carry exactly
    result_too_large = "result_too_large"  # its encoded result is over MAX_RESULT_BYTES
    unknown_function = "unknown_function"  # no worker has its function registered
    unreadable_payload = "unreadable_payload"  # its stored payload is not a job
    expired = "expired"  # its payload expired before a worker took it
    worker_lost = "worker_lost"  # its worker stopped (crashed, killed) while running it


# The `type` shown for a failure the platform itself decided (an exception's own class name otherwise).
KIND_TYPES = {
    ErrorKind.timeout: "JobTimeout",
    ErrorKind.aborted: "JobAborted",
    ErrorKind.invalid_arguments: "InvalidArguments",
    ErrorKind.unencodable_result: "UnencodableResult",
    ErrorKind.result_too_large: "ResultTooLarge",
    ErrorKind.unknown_function: "UnknownFunction",
    ErrorKind.unreadable_payload: "UnreadablePayload",
    ErrorKind.expired: "JobExpired",
    ErrorKind.worker_lost: "WorkerLost",
}


class JobError(Exception):
    """A job's failure as read back from Redis (or about to be written)."""

    def __init__(self, type_: str, message: str, kind: str = ErrorKind.exception, traceback: str | None = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.kind = kind
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable, for a worker built on arq's own (pickle) serializer.
        return (JobError, (self.type, self.message, self.kind, self.traceback))

    @classmethod
    def of_kind(cls, kind: ErrorKind, message: str, traceback: str | None = None) -> JobError:
        return cls(KIND_TYPES.get(kind, kind.value), message, kind, traceback)

    @property
    def aborted(self) -> bool:
        return self.kind == ErrorKind.aborted

    def marker(self) -> dict[str, dict[str, Any]]:
        return {
            ERROR_MARKER: {"type": self.type, "message": self.message, "kind": self.kind, "traceback": self.traceback}
        }


def error_marker(exc: BaseException) -> dict[str, dict[str, Any]]:
    if isinstance(exc, JobError):
        return exc.marker()
    if isinstance(exc, asyncio.CancelledError):
        return JobError.of_kind(ErrorKind.aborted, str(exc) or "job was aborted").marker()
    if isinstance(exc, TimeoutError):
        return JobError.of_kind(ErrorKind.timeout, str(exc) or "job timed out").marker()
    return JobError(type(exc).__name__, str(exc)).marker()


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
            type_ = str(marker.get("type", "Error"))
            # A result written before error kinds existed said an abort as "CancelledError".
            legacy_kind = ErrorKind.aborted if type_ == "CancelledError" else ErrorKind.exception
            decoded["r"] = JobError(
                type_,
                str(marker.get("message", "")),
                str(marker.get("kind") or legacy_kind),
                marker["traceback"] if isinstance(marker.get("traceback"), str) else None,
            )
    return decoded
