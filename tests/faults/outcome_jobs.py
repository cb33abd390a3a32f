"""Jobs for the outcome-path fault tests (loaded only by the processes under test, through JOB_MODULES)."""

from __future__ import annotations

import asyncio

from core import JobContext, RetryPolicy, job
from tests.faults.fault_jobs import append_to_ledger


@job(timeout=30, max_tries=3, retry=RetryPolicy(delay_s=0, jitter=0))
async def fail_at_once(ctx: JobContext, token: str) -> None:
    """Fail every try; retried with no delay at all."""
    append_to_ledger("start", token, ctx["job_try"])
    raise ValueError(f"{token} fails")


@job(timeout=60)
async def slow_ledger_job(ctx: JobContext, token: str, seconds: float) -> str:
    """Write `start`, sleep, write `end`: a job that outlives a short lease."""
    append_to_ledger("start", token, ctx["job_try"])
    await asyncio.sleep(seconds)
    append_to_ledger("end", token, ctx["job_try"])
    return token
