"""Jobs whose results or exceptions test the edges of the outcome path (tests/test_outcomes.py)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from core import JobContext, RetryPolicy, job

RETRY_FAST = RetryPolicy(delay_s=0, jitter=0)


class Opaque:
    """An object JSON has no form for."""


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


RESULTS: dict[str, Any] = {
    "bytes": b"\x00\x01",
    "object": Opaque(),
    "huge_int": 2**70,
    "nan": {"value": float("nan")},
    "infinity": [float("inf")],
}


@job(timeout=5, max_tries=2, retry=RETRY_FAST)
async def return_unencodable(ctx: JobContext, what: str) -> Any:
    """Return a value JSON cannot carry exactly."""
    return RESULTS[what]


@job(timeout=5, max_tries=2, retry=RETRY_FAST)
async def return_declared_int(ctx: JobContext) -> int:
    """Declare int, return a string: the result does not match its contract."""
    return "not an int"  # type: ignore[return-value]


@job(timeout=5, max_tries=2, retry=RETRY_FAST)
async def raise_base_exception(ctx: JobContext, what: str) -> None:
    """Raise SystemExit, KeyboardInterrupt, or an exception whose str() raises."""
    if what == "system_exit":
        sys.exit(3)
    if what == "keyboard_interrupt":
        raise KeyboardInterrupt
    if what == "cancelled":
        raise asyncio.CancelledError  # the job's own, not a cancel by the worker
    raise BadStr


@job(timeout=5, max_tries=1)
async def big_result(ctx: JobContext, size: int) -> str:
    """Return a string of `size` characters."""
    await asyncio.sleep(0)
    return "x" * size
