"""Putting a registered job on the queue: validate first, then one arq enqueue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis

from core.registry import JobSpec, registry


class DuplicateJob(Exception):
    """A job with this id already exists (queued, running, or with a kept result)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    enqueued_at: datetime
    scheduled_at: datetime

    @property
    def deferred(self) -> bool:
        return self.scheduled_at > self.enqueued_at


async def enqueue(
    pool: ArqRedis,
    spec: JobSpec,
    kwargs: dict[str, Any],
    *,
    job_id: str | None = None,
    defer_by: float | None = None,
    defer_until: datetime | None = None,
    queue_name: str | None = None,
) -> Enqueued:
    """Validate `kwargs` against the job's signature and enqueue it; raises ValidationError or DuplicateJob."""
    wire_kwargs = spec.json_kwargs(kwargs)
    enqueued_at = datetime.now(UTC)
    handle = await pool.enqueue_job(
        spec.name,
        _job_id=job_id,
        _defer_by=timedelta(seconds=defer_by) if defer_by else None,
        _defer_until=defer_until,
        _queue_name=queue_name,
        **wire_kwargs,
    )
    if handle is None:
        raise DuplicateJob(job_id or "")
    if defer_until is not None:
        scheduled_at = max(defer_until.astimezone(UTC), enqueued_at)
    else:
        scheduled_at = enqueued_at + timedelta(seconds=defer_by or 0)
    return Enqueued(handle.job_id, enqueued_at, scheduled_at)


async def enqueue_from_job(ctx: Any, function: Any, **kwargs: Any) -> str:
    """Fan out from inside a job: enqueue another registered job by its function; returns its id."""
    accepted = await enqueue(ctx["redis"], registry.spec_of(function), kwargs, queue_name=ctx.get("queue_name"))
    return accepted.job_id
