"""A job module whose rate limit cannot be enforced: building its registry stops start-up."""

from __future__ import annotations

from core.context import JobContext
from core.registry import job


@job(rate_limit="5 per second")
async def too_vague(ctx: JobContext) -> None:
    """Never runs."""
