"""Jobs for the fault-injection suite. Loaded only by the processes under test, through
`JOB_MODULES=jobs,tests.support.sample_jobs,tests.faults.fault_jobs`; the pytest process never imports it, so
its jobs (and the 1-second cron) stay out of the registries the rest of the suite builds.

Every job writes to the side ledger named by `FAULT_LEDGER`, a file outside Redis, one line per event:
`<kind> <token> <pid> <try> <unix time>`, so a test can count executions whatever happens to Redis or a worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from core.context import JobContext
from core.registry import cron, every, job
from core.retry import RetryPolicy

BACKOFF = RetryPolicy(delay_s=0.4, factor=2, jitter=0.1)


def append_to_ledger(kind: str, name: str, job_try: int) -> None:
    """One `write` on an O_APPEND descriptor per line: lines from concurrent workers never interleave."""
    line = f"{kind} {name} {os.getpid()} {job_try} {time.time():.6f}\n".encode()
    fd = os.open(os.environ["FAULT_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # unbuffered: in the file (page cache) before the job goes on, even if killed next
    finally:
        os.close(fd)


@job(timeout=60)
async def ledger_job(ctx: JobContext, token: str, seconds: float = 0.0) -> str:
    """Write `start`, sleep `seconds`, write `end`."""
    append_to_ledger("start", token, ctx["job_try"])
    await asyncio.sleep(seconds)
    append_to_ledger("end", token, ctx["job_try"])
    return token


@job(timeout=30, max_tries=3)
async def poison_job(ctx: JobContext, token: str) -> None:
    """SIGKILL the worker running it, on every try."""
    append_to_ledger("start", token, ctx["job_try"])
    os.kill(os.getpid(), signal.SIGKILL)


@job(timeout=1, max_tries=2, retry=RetryPolicy(delay_s=0.2, jitter=0))
async def slow_job(ctx: JobContext, token: str, seconds: float = 3.0) -> None:
    """Sleep past its 1 s timeout."""
    append_to_ledger("start", token, ctx["job_try"])
    await asyncio.sleep(seconds)
    append_to_ledger("end", token, ctx["job_try"])


@job(timeout=5, max_tries=4, retry=BACKOFF)
async def flaky_job(ctx: JobContext, token: str, failures: int) -> int:
    """Fail the first `failures` tries with ConnectionError, then succeed."""
    append_to_ledger("start", token, ctx["job_try"])
    if ctx["job_try"] <= failures:
        raise ConnectionError(f"try {ctx['job_try']} failed")
    append_to_ledger("end", token, ctx["job_try"])
    return ctx["job_try"]


@job(timeout=5, max_tries=2, retry=RetryPolicy(delay_s=0.1, jitter=0))
async def failing_job(ctx: JobContext, token: str) -> None:
    """Fail every try with ValueError."""
    append_to_ledger("start", token, ctx["job_try"])
    raise ValueError(f"{token} always fails")


# The 1-second cron only where a test asks for it (FAULT_CRON=1): elsewhere its ticks would be in flight at
# every crash and muddy the figures.
if os.environ.get("FAULT_CRON") == "1":

    @cron(second=every(1), timeout=10)
    async def record_tick(ctx: JobContext) -> str:
        """Write `tick <job id>`; the platform names a cron tick `platform:cron:<name>:<tick in unix ms>`."""
        append_to_ledger("tick", ctx["job_id"], ctx.get("job_try", 1))
        return ctx["job_id"]
