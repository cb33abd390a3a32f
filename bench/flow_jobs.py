"""The jobs of `python -m bench.flow`, loaded through `JOB_MODULES=jobs,bench.noop_jobs,bench.flow_jobs`: each
appends its start (and end) time to a ledger file, outside Redis."""

from __future__ import annotations

import asyncio
import os
import time

from core.context import JobContext
from core.registry import job


def _note(ledger: str, line: str) -> None:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@job(rate_limit="5/s")
async def bench_rated(ctx: JobContext, ledger: str) -> None:
    """Five starts a second across every worker."""
    _note(ledger, f"start {time.time():.6f} rated")


@job(concurrency=2)
async def bench_paired(ctx: JobContext, ledger: str, hold_s: float) -> None:
    """Two at once across every worker."""
    _note(ledger, f"start {time.time():.6f} paired")
    await asyncio.sleep(hold_s)
    _note(ledger, f"end {time.time():.6f} paired")


@job
async def bench_marker(ctx: JobContext, ledger: str, tag: str) -> None:
    """When the job behind the backlog started."""
    _note(ledger, f"start {time.time():.6f} {tag}")
