"""Jobs for the chain and unique-job tests (tests/test_chains.py, tests/test_unique_jobs.py). What chained jobs
receive is written to LEDGER, outside Redis, so a test sees what each job was really called with."""

from __future__ import annotations

import asyncio

from core.chains import then
from core.context import JobContext
from core.enqueue import enqueue_from_job
from core.registry import job

LEDGER: list[tuple[str, object]] = []


@job
async def fetch_total(ctx: JobContext, order_id: int) -> int:
    """The parent of a chain: its result is passed on."""
    return order_id * 10


@job
async def record_total(ctx: JobContext, total: int, label: str) -> str:
    """A child: given its parent's result as `total`."""
    LEDGER.append((label, total))
    return f"{label}:{total}"


@job
async def shout(ctx: JobContext, text: str, times: int = 1) -> str:
    """A grandchild: given its parent's result as `text`."""
    LEDGER.append(("shout", text))
    return text.upper() * times


@job(max_tries=1)
async def explode(ctx: JobContext, order_id: int) -> int:
    """A parent that fails for good."""
    raise ValueError(f"order {order_id} exploded")


@job
async def slow_total(ctx: JobContext, order_id: int, seconds: float) -> int:
    """A parent that runs a while (to be aborted while it runs)."""
    await asyncio.sleep(seconds)
    return order_id


@job
async def chain_from_job(ctx: JobContext, order_id: int) -> str:
    """Enqueues a chain from inside a job."""
    return await enqueue_from_job(
        ctx, fetch_total, order_id=order_id, _then=[then(record_total, "total", label=f"from-job-{order_id}")]
    )


@job(unique=("report_id",))
async def build_report(ctx: JobContext, report_id: int, note: str = "") -> str:
    """One report per report_id while one is queued or running."""
    LEDGER.append(("report", report_id))
    return f"report {report_id} {note}"
