"""Jobs for the priority and limit tests: each appends to a ledger file (outside Redis) when it starts and ends,
so the tests read what ran when, across worker processes."""

from __future__ import annotations

import asyncio
import os
import time

from core.context import JobContext
from core.registry import job


def _note(ledger: str, line: str) -> None:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())  # one write of a short line with O_APPEND: lines never interleave
    finally:
        os.close(fd)


@job(rate_limit="5/s")
async def rated(ctx: JobContext, ledger: str) -> None:
    """At most five starts in any second, across all workers."""
    _note(ledger, f"start {time.time():.6f} {os.getpid()} rated")


@job(concurrency=2)
async def paired(ctx: JobContext, ledger: str, hold_s: float = 0.2) -> None:
    """At most two running at once, across all workers."""
    _note(ledger, f"start {time.time():.6f} {os.getpid()} paired {ctx['job_id']}")
    await asyncio.sleep(hold_s)
    _note(ledger, f"end {time.time():.6f} {os.getpid()} paired {ctx['job_id']}")


@job
async def unlimited(ctx: JobContext, ledger: str, tag: str = "") -> None:
    """No limits: flows past limited jobs."""
    _note(ledger, f"start {time.time():.6f} {os.getpid()} unlimited {tag}")


@job(priority="low")
async def background(ctx: JobContext, ledger: str, tag: str = "") -> None:
    """Low priority unless the enqueue says otherwise."""
    _note(ledger, f"start {time.time():.6f} {os.getpid()} background {tag}")
