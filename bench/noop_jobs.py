"""The benchmark's job for the platform, loaded through `JOB_MODULES=jobs,bench.noop_jobs`."""

from __future__ import annotations

from core.context import JobContext
from core.registry import job


@job
async def noop(ctx: JobContext) -> None:
    """Do nothing, so a run measures the job path and not the work."""
