"""Jobs that exist only for the tests (registered through JOB_MODULES)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.context import JobContext
from core.registry import job
from core.retry import Fatal, RetryPolicy


@job(timeout=5)
async def echo(ctx: JobContext, value: Any) -> Any:
    """Return the value unchanged."""
    return value


@job(timeout=5, max_tries=1)
async def fail_always(ctx: JobContext, message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


@job(timeout=60)
async def sleep_for(ctx: JobContext, seconds: float) -> float:
    """Sleep, then return how long it slept."""
    await asyncio.sleep(seconds)
    return seconds


@job(timeout=5)
async def record_start(ctx: JobContext, token: str) -> float:
    """Return (and store under test:started:<token>) the wall-clock time the job started."""
    started = time.time()
    await ctx["redis"].set(f"test:started:{token}", started)
    return started


@job(timeout=5, max_tries=3, retry=RetryPolicy(delay_s=0.3, factor=2, jitter=0))
async def fail_then_succeed(ctx: JobContext, failures: int) -> int:
    """Fail the first `failures` tries, then return the try number it succeeded on."""
    if ctx["job_try"] <= failures:
        raise ConnectionError(f"try {ctx['job_try']} failed")
    return ctx["job_try"]


@job(timeout=5, max_tries=3, retry=RetryPolicy(delay_s=0.05, jitter=0))
async def fail_fatally(ctx: JobContext, message: str) -> None:
    """Raise Fatal: never retried."""
    raise Fatal(message)


@job(timeout=60)
async def count_starts(ctx: JobContext, token: str, seconds: float) -> int:
    """Count this start under test:starts:<token>, then sleep; returns the count so far."""
    starts = await ctx["redis"].incr(f"test:starts:{token}")
    await asyncio.sleep(seconds)
    return int(starts)


@job(timeout=5, max_tries=1)
async def fail_until_allowed(ctx: JobContext, token: str) -> str:
    """Raise PermissionError until test:allowed:<token> is set (a dead letter a test can then requeue to success)."""
    if not await ctx["redis"].exists(f"test:allowed:{token}"):
        raise PermissionError(f"{token} is not allowed yet")
    return token
