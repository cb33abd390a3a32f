"""A cron schedule whose kwargs do not fit its function: start-up must stop with one line naming it."""

from __future__ import annotations

from core import JobContext, cron


@cron(hour=3, minute=0, kwargs={"regoin": "eu"}, tz="Europe/Paris", name="nightly_eu")
async def sync_region(ctx: JobContext, region: str) -> None:
    """Sync one region (the schedule misspells its argument)."""
