"""Held jobs: written to Redis now, run only once their holder releases them (or a grace period passes).

A route that enqueues a job "after the response" must not lose it if the API process dies once the response
is out, nor run it if the route fails. So the job is written at once, as a job deferred until
`now + grace` (or its own later time): durable from the start, and run by the queue itself if nobody
releases it. Releasing re-scores it to when it was meant to run and wakes a worker; discarding removes it.
No sweeper is needed: a held job whose process died is just a deferred job that comes due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis

from core import keys
from core.chains import Then
from core.enqueue import Enqueued, enqueue
from core.registry import JobSpec
from core.scripts import MAX_WAKE_TOKENS


@dataclass(frozen=True)
class Held:
    """A job written deferred until `held_until`, meant to run at `run_at`."""

    job_id: str
    run_at: datetime
    held_until: datetime
    existing: bool = False  # a unique job's duplicate: the job holding its key, not ours to release or remove


def _run_at(now: datetime, defer_by: float | None, defer_until: datetime | None) -> datetime:
    if defer_until is not None:
        return max(defer_until.astimezone(UTC), now)
    return now + timedelta(seconds=defer_by or 0)


async def hold(
    pool: ArqRedis,
    spec: JobSpec,
    kwargs: dict[str, Any],
    *,
    grace_s: float,
    job_id: str | None = None,
    defer_by: float | None = None,
    defer_until: datetime | None = None,
    queue_name: str | None = None,
    then: Sequence[Then] = (),
) -> Held:
    """Validate and write the job, held until `grace_s` from now (or its own later time); raises like
    `core.enqueue.enqueue` (ValidationError, Unencodable, DuplicateJob)."""
    now = datetime.now(UTC)
    run_at = _run_at(now, defer_by, defer_until)
    held_until = max(run_at, now + timedelta(seconds=grace_s))
    accepted: Enqueued = await enqueue(
        pool, spec, kwargs, job_id=job_id, defer_until=held_until, queue_name=queue_name, then=then
    )
    return Held(accepted.job_id, run_at, accepted.scheduled_at, accepted.existing)


async def release(pool: ArqRedis, queue_name: str, held: Sequence[Held]) -> None:
    """Let held jobs run at their own time. Only jobs still queued are touched (`XX`), and only brought
    forward (`LT`): an aborted job stays aborted, and one already run or retried is left alone. One `ZADD`
    for the whole batch, then one wake token for the workers."""
    if not held:
        return
    scores: dict[str, float] = {item.job_id: int(item.run_at.timestamp() * 1000) for item in held}
    async with pool.pipeline(transaction=False) as pipe:
        pipe.zadd(queue_name, scores, xx=True, lt=True)
        pipe.lpush(keys.wake(queue_name), "1")
        pipe.ltrim(keys.wake(queue_name), 0, MAX_WAKE_TOKENS - 1)
        await pipe.execute()


async def discard(pool: ArqRedis, queue_name: str, held: Sequence[Held]) -> None:
    """Remove held jobs that have not started (their holder failed): off the queue, payload deleted."""
    if not held:
        return
    async with pool.pipeline(transaction=False) as pipe:
        for item in held:
            pipe.exists(keys.in_progress(item.job_id))
        running = await pipe.execute()
    async with pool.pipeline(transaction=True) as pipe:
        for item, started in zip(held, running, strict=True):
            if not started:  # the grace ran out and a worker took it: it is no longer ours to remove
                pipe.zrem(queue_name, item.job_id)
                pipe.delete(keys.job(item.job_id))
        await pipe.execute()
