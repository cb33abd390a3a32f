"""The history of a job's failed tries (time, kind, error type, message, traceback), kept in Redis beside the
job and written by the same script that ends the try. Read defensively: an entry that is not one is skipped."""

from __future__ import annotations

import time
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from core import codec
from core.codec import ErrorKind, JobError

log = structlog.get_logger("core")
ATTEMPTS_TTL_S = 30 * 86_400
# A traceback is kept up to this many characters, its end (where the error is) kept.
MAX_TRACEBACK_CHARS = 8_000
MAX_MESSAGE_CHARS = 2_000


class Attempt(BaseModel):
    """One failed try as stored."""

    model_config = ConfigDict(extra="ignore")

    try_: int
    at: float | None = None
    kind: str = ErrorKind.exception
    error_type: str
    message: str
    traceback: str | None = None
    duration_s: float | None = None
    retry_in_s: float | None = None


def attempt(job_try: int, error: JobError, duration_s: float | None, retry_in_s: float | None) -> dict[str, Any]:
    return {
        "try": job_try,
        "at": time.time(),
        "kind": error.kind,
        "error_type": error.type,
        "message": error.message,
        "traceback": error.traceback,
        "duration_s": None if duration_s is None else round(duration_s, 4),
        "retry_in_s": None if retry_in_s is None else round(retry_in_s, 3),
    }


def bounded(text: str, limit: int) -> str:
    """At most `limit` characters: the start (where a traceback's frames are) and the end (its error line)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}\n... ({len(text) - limit} characters left out) ...\n{text[len(text) - (limit - head) :]}"


def bounded_traceback(text: str) -> str:
    return bounded(text, MAX_TRACEBACK_CHARS)


def parse(raw: list[bytes] | None) -> list[Attempt]:
    history: list[Attempt] = []
    for item in raw or []:
        try:
            value = codec.loads(item)
            history.append(Attempt(try_=value.pop("try"), **value) if isinstance(value, dict) else _bad(value))
        except (ValueError, TypeError, KeyError, ValidationError):
            log.warning("record.malformed", record="attempt", value=repr(item)[:80])
    return history


def _bad(value: object) -> Attempt:
    raise TypeError(f"not an attempt: {type(value).__name__}")


def with_lost_tries(history: list[Attempt], last_try: int) -> list[Attempt]:
    """Fill in the tries up to `last_try` that left no record: their worker stopped while running them."""
    seen = {entry.try_ for entry in history}
    lost = [
        Attempt(
            try_=n,
            kind=ErrorKind.worker_lost,
            error_type=codec.KIND_TYPES[ErrorKind.worker_lost],
            message="the worker stopped while running this try",
        )
        for n in range(1, last_try + 1)
        if n not in seen
    ]
    return sorted(history + lost, key=lambda entry: entry.try_)
