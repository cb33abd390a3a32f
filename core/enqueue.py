"""Putting a registered job on the queue: validate first, then one round trip to Redis.

arq's own enqueue costs three round trips (WATCH, EXISTS, MULTI/EXEC). A Lua script does the same
work atomically in one: refuse an id that exists (queued, running, or with a kept result), write the
job in arq's format and key layout, add it to the queue, and wake one sleeping worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from arq.connections import ArqRedis
from pydantic import ValidationError
from redis.commands.core import AsyncScript

from core import codec, keys
from core.context import JobContext
from core.registry import JobFunction, JobSpec, registry

_ENQUEUE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  -- The same payload (same id and enqueue time) means this call is a retry of one that got through.
  if current == ARGV[2] then return 1 end
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, ARGV[5])
return 1
"""
# Wake tokens kept at most: enough to wake every worker, bounded so an idle queue never grows.
MAX_WAKE_TOKENS = 256


class InvalidBatchItem(ValueError):
    """One job of a batch failed validation; nothing of the batch was written."""

    def __init__(self, index: int, error: ValidationError) -> None:
        super().__init__(f"job {index}: {error}")
        self.index = index
        self.error = error


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


@dataclass(frozen=True)
class JobRequest:
    """One job to enqueue: what `enqueue_many` takes."""

    spec: JobSpec
    kwargs: dict[str, Any]
    job_id: str | None = None
    defer_by: float | None = None
    defer_until: datetime | None = None


def _script(pool: ArqRedis) -> AsyncScript:
    """The enqueue script bound to this pool, made once: calls go by EVALSHA, not the whole source."""
    script: AsyncScript | None = getattr(pool, "_platform_enqueue_script", None)
    if script is None:
        script = pool.register_script(_ENQUEUE_SCRIPT)
        pool._platform_enqueue_script = script  # type: ignore[attr-defined]
    return script


def _prepare(
    request: JobRequest, queue_name: str, now: datetime, expires_after_ms: int
) -> tuple[list[str], list[Any], Enqueued]:
    """Validate and encode one job: the script's keys and arguments, and what the caller is told."""
    wire_kwargs = request.spec.json_kwargs(request.kwargs)
    job_id = request.job_id or uuid4().hex
    if request.defer_until is not None:
        scheduled_at = request.defer_until.astimezone(UTC)
    else:
        scheduled_at = now + timedelta(seconds=request.defer_by or 0)
    now_ms = int(now.timestamp() * 1000)
    score = int(scheduled_at.timestamp() * 1000)
    expires_ms = max(score - now_ms, 0) + expires_after_ms
    payload = codec.dumps({"t": None, "f": request.spec.name, "a": [], "k": wire_kwargs, "et": now_ms})
    script_keys = [keys.job(job_id), keys.result(job_id), queue_name, keys.wake(queue_name)]
    args = [job_id, payload, score, expires_ms, MAX_WAKE_TOKENS - 1]
    return script_keys, args, Enqueued(job_id, now, max(scheduled_at, now))


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
    request = JobRequest(spec, kwargs, job_id, defer_by, defer_until)
    script_keys, args, accepted = _prepare(
        request, queue_name or pool.default_queue_name, datetime.now(UTC), pool.expires_extra_ms
    )
    if not await _script(pool)(keys=script_keys, args=args):
        raise DuplicateJob(accepted.job_id)
    return accepted


async def enqueue_many(
    pool: ArqRedis, requests: Sequence[JobRequest], *, queue_name: str | None = None
) -> list[Enqueued | DuplicateJob]:
    """Enqueue many jobs in one pipelined round trip; validates all of them before writing any
    (raises InvalidBatchItem), and reports an existing id as a DuplicateJob in its place."""
    now = datetime.now(UTC)
    prepared = []
    for index, request in enumerate(requests):
        try:
            prepared.append(_prepare(request, queue_name or pool.default_queue_name, now, pool.expires_extra_ms))
        except ValidationError as exc:
            raise InvalidBatchItem(index, exc) from None
    script = _script(pool)
    async with pool.pipeline(transaction=False) as pipe:
        for script_keys, args, _ in prepared:
            await script(keys=script_keys, args=args, client=pipe)
        written = await pipe.execute()
    return [
        accepted if ok else DuplicateJob(accepted.job_id)
        for (_, _, accepted), ok in zip(prepared, written, strict=True)
    ]


async def enqueue_from_job(ctx: JobContext, function: JobFunction, *, _job_id: str | None = None, **kwargs: Any) -> str:
    """Fan out from inside a job: enqueue another registered job by its function; returns its id.

    Give the child an id derived from the parent's input (`_job_id=f"order-{order_id}:receipt"`) and a
    re-run of the parent (after a crash, or a retry) finds the child already there instead of adding it twice.
    """
    spec = registry.spec_of(function)
    try:
        accepted = await enqueue(ctx["redis"], spec, kwargs, job_id=_job_id, queue_name=ctx.get("queue_name"))
    except DuplicateJob as exc:
        return exc.job_id
    return accepted.job_id
