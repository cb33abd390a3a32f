"""What ties a job to the request that made it: the request's id and its W3C `traceparent`.

The API sets them for the request (service/guard.py); whatever enqueues during it (a route, a batch, a typed
endpoint, `JobsDep`) stores them in the job's payload (core/wire.py); the worker binds them again for every try,
so the job's log lines carry `request_id` and a job it fans out carries them on. With OpenTelemetry installed
(`opentelemetry-api`), the job's span is a child of the request's span (core/tracing.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from core import tracing

MAX_REQUEST_ID_CHARS = 128
_SAFE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_REQUEST_ID_CHARS}}}")
# version 00: trace id (32 hex, not all zero), parent span id (16 hex, not all zero), flags
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(frozen=True)
class Correlation:
    request_id: str | None = None
    traceparent: str | None = None


current: ContextVar[Correlation | None] = ContextVar("platform_correlation", default=None)


def sane_request_id(value: str | None) -> str | None:
    """A client's `X-Request-ID` when it is short and of a safe charset (it lands in logs and headers)."""
    return value if value is not None and _SAFE_REQUEST_ID.fullmatch(value) else None


def sane_traceparent(value: str | None) -> str | None:
    """A W3C `traceparent` of version 00, or None."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if _TRACEPARENT.fullmatch(value) else None


def from_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    """A request's id (its sane `X-Request-ID`, else a new one) and its sane `traceparent`, from its ASGI headers."""
    request_id = traceparent = None
    for name, value in headers:
        if name == b"x-request-id":
            request_id = sane_request_id(value.decode("latin-1"))
        elif name == b"traceparent":
            traceparent = sane_traceparent(value.decode("latin-1"))
    # os.urandom, as secrets.token_hex(16) reads it, without its three calls in Python: this runs on every request
    return request_id or os.urandom(16).hex(), traceparent


def for_job() -> Correlation | None:
    """What a job enqueued now carries: the request's id, and the trace context of the current span when
    OpenTelemetry has one (an instrumented API, or a job fanning out), else the request's `traceparent`."""
    found = current.get()
    traceparent = tracing.current_traceparent()
    if traceparent is None:
        return found
    return Correlation(found.request_id if found else None, traceparent)
