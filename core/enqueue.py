"""Putting a registered job on the queue: validate first, then one round trip to Redis.

arq's own enqueue costs three round trips (WATCH, EXISTS, MULTI/EXEC). One script (core/lua/enqueue.lua) does
the same work atomically: refuse an id that exists (queued, running, or with a kept result), write the job in
arq's format and key layout, add it to the queue, and wake one sleeping worker. A batch is one call of the same
script: all of it is written, or (Redis refusing the write) none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from arq.connections import ArqRedis
from arq.jobs import serialize_job
from pydantic import ValidationError

from core import chains, correlation, keys, priority, unique, wire
from core.chains import Child, Then
from core.context import JobContext
from core.exact_json import Unencodable, dumps_exact
from core.priority import Priority
from core.registry import JobFunction, JobSpec, spec_of
from core.scripts import MAX_WAKE_TOKENS, scripts


class InvalidBatchItem(ValueError):
    """Items of a batch failed validation; nothing of the batch was written. `errors` maps index -> error."""

    def __init__(self, errors: dict[int, ValidationError | Unencodable | ValueError]) -> None:
        # a ChainInvalid (a `then` entry) is a ValueError too, located from the item's `then`
        super().__init__("; ".join(f"job {index}: {error}" for index, error in errors.items()))
        self.errors = errors


class DuplicateJob(Exception):
    """A job with this id already exists (queued, running, or with a kept result)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class ReservedJobId(ValueError):
    """A client gave a job id in the platform's own namespace (cron ticks, fan-out children)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"job ids starting with {keys.PLATFORM_JOB_ID_PREFIX!r} are reserved for the platform's own jobs"
        )
        self.job_id = job_id


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    enqueued_at: datetime
    scheduled_at: datetime
    existing: bool = False  # a unique job's duplicate: this is the job that holds the key (its times unknown)
    children: tuple[Child, ...] = ()

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
    priority: Priority | None = None  # None: the function's own (`@job(priority=...)`), else default
    then: tuple[Then, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """One job validated and encoded (`prepare_many`), ready to write (`write_many`)."""

    job_id: str
    function: str
    payload: bytes
    score: int | str  # as the enqueue script takes it (core/priority.py)
    expires_ms: int
    accepted: Enqueued
    unique_key: str | None = None
    chain_records: bytes | None = None


def _now_ms_precision() -> datetime:
    """Now, to the millisecond: what Redis keeps of a job's times, so the answer and a later read agree."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _prepare(request: JobRequest, now: datetime, expires_after_ms: int) -> Prepared:
    """Validate and encode one job (raises ValidationError, Unencodable for a value JSON cannot carry, or
    ChainInvalid for a bad `then` entry)."""
    wire_kwargs = request.spec.json_kwargs(request.kwargs)
    job_id = request.job_id or uuid4().hex
    children = chains.prepare(request.spec, request.then) if request.then else ()
    unique_key = unique.lock_key(request.spec, wire_kwargs) if request.spec.options.unique else None
    if request.defer_until is not None:
        scheduled_at = request.defer_until.astimezone(UTC)
    else:
        scheduled_at = now + timedelta(seconds=request.defer_by or 0)
    now_ms = int(now.timestamp() * 1000)
    score = int(scheduled_at.timestamp() * 1000)
    expires_ms = max(score - now_ms, 0) + expires_after_ms
    level = priority.check(request.priority or request.spec.options.priority or "default")
    extra = b""
    if children:
        extra += chains.payload_fields(children)
    if unique_key is not None:
        extra += b',"u":' + dumps_exact(unique_key)
    encoded = wire.encode_job(request.spec.name, wire_kwargs, now_ms, correlation.for_job(), extra)
    payload = priority.mark(encoded, level)
    if level == "low":
        expires_ms += priority.low_aging_ms()
    accepted = Enqueued(job_id, now, max(scheduled_at, now), children=children)
    records = chains.records(job_id, children) if children else None
    score_arg = priority.script_score(score, level)
    return Prepared(job_id, request.spec.name, payload, score_arg, expires_ms, accepted, unique_key, records)


async def _write(pool: ArqRedis, queue_name: str, prepared: Sequence[Prepared]) -> list[bool | str]:
    """One script call for all of them: True written, False the id exists, or the id of the unique job that
    holds the item's key."""
    script_keys = [queue_name, keys.wake(queue_name)]
    # The enqueue's own now, as the scores were computed from it: a job due now is queued, not deferred.
    args: list[Any] = [MAX_WAKE_TOKENS, int(prepared[0].accepted.enqueued_at.timestamp() * 1000), len(prepared)]
    extras: list[Any] = []  # only for jobs that are unique or chained: `index, unique key, chain records`
    for index, item in enumerate(prepared, 1):
        script_keys += [keys.job(item.job_id), keys.result(item.job_id)]
        args += [item.job_id, item.payload, item.score, item.expires_ms, item.function]
        if item.unique_key is not None or item.chain_records is not None:
            extras += [index, item.unique_key or "", item.chain_records or ""]
    written = await scripts(pool).enqueue(keys=script_keys, args=args + extras)
    return [flag.decode() if isinstance(flag, bytes) else bool(flag) for flag in written]


def _existing(item: Prepared, holder: str) -> Enqueued:
    return Enqueued(holder, item.accepted.enqueued_at, item.accepted.scheduled_at, existing=True)


async def enqueue(
    pool: ArqRedis,
    spec: JobSpec,
    kwargs: dict[str, Any],
    *,
    job_id: str | None = None,
    defer_by: float | None = None,
    defer_until: datetime | None = None,
    queue_name: str | None = None,
    priority: Priority | None = None,
    then: Sequence[Then] = (),
) -> Enqueued:
    """Validate `kwargs` against the job's signature (and each `then` entry against its own) and enqueue it;
    raises ValidationError, Unencodable, ValueError (an unknown priority), ChainInvalid or DuplicateJob. A unique
    job whose key is held answers with the job that holds it (`existing=True`)."""
    request = JobRequest(spec, kwargs, job_id, defer_by, defer_until, priority, tuple(then))
    prepared = _prepare(request, _now_ms_precision(), pool.expires_extra_ms)
    (written,) = await _write(pool, queue_name or pool.default_queue_name, [prepared])
    if isinstance(written, str):
        return _existing(prepared, written)
    if not written:
        raise DuplicateJob(prepared.job_id)
    return prepared.accepted


async def enqueue_many(
    pool: ArqRedis, requests: Sequence[JobRequest], *, queue_name: str | None = None
) -> list[Enqueued | DuplicateJob]:
    """Enqueue many jobs in one atomic call; validates all of them first and raises InvalidBatchItem naming
    every bad one; an existing id is a DuplicateJob in its place, and so is an id given again in the batch
    (the same id is the same job: the first one given is written). A unique job whose key is held (by an earlier
    job of the batch too) is the job that holds it (`existing`)."""
    return await write_many(pool, prepare_many(requests, pool.expires_extra_ms), queue_name=queue_name)


async def write_many(
    pool: ArqRedis, prepared: Sequence[Prepared], *, queue_name: str | None = None
) -> list[Enqueued | DuplicateJob]:
    """Write jobs `prepare_many` validated and encoded, in one atomic call (what `enqueue_many` does after
    preparing; a caller that prepared them earlier, to report errors at once, does not pay for it twice)."""
    if not prepared:
        return []
    first: dict[str, Prepared] = {}  # each id once: the first job given with it
    for item in prepared:
        first.setdefault(item.job_id, item)
    written = dict(
        zip(first, await _write(pool, queue_name or pool.default_queue_name, list(first.values())), strict=True)
    )
    answers: list[Enqueued | DuplicateJob] = []
    for item in prepared:
        ok = written[item.job_id]
        if first[item.job_id] is not item:
            answers.append(DuplicateJob(item.job_id))
        elif isinstance(ok, str):
            answers.append(_existing(item, ok))
        else:
            answers.append(item.accepted if ok else DuplicateJob(item.job_id))
    return answers


def prepare_many(requests: Sequence[JobRequest], expires_after_ms: int) -> list[Prepared]:
    """Validate and encode a batch; raises InvalidBatchItem naming every bad item."""
    now = _now_ms_precision()
    prepared: list[Prepared] = []
    errors: dict[int, ValidationError | Unencodable | ValueError] = {}
    for index, request in enumerate(requests):
        try:
            prepared.append(_prepare(request, now, expires_after_ms))
        except (ValidationError, Unencodable, ValueError) as exc:
            errors[index] = exc
    if errors:
        raise InvalidBatchItem(errors)
    return prepared


async def enqueue_tick(
    pool: ArqRedis,
    queue_name: str,
    function: str,
    job_id: str | None,
    defer_until: datetime | None,
    kwargs: dict[str, Any] | None = None,
) -> bool:
    """A cron tick (with its schedule's kwargs), written as arq's `enqueue_job` writes it (the pool's own
    serializer) but through the enqueue script, so it is published, indexed and counted like any other: how the
    worker enqueues cron ticks. False when the id exists."""
    now = _now_ms_precision()
    now_ms = int(now.timestamp() * 1000)
    scheduled = max(defer_until.astimezone(UTC), now) if defer_until is not None else now
    score = int(scheduled.timestamp() * 1000) if defer_until is not None else now_ms
    payload = serialize_job(function, (), kwargs or {}, None, now_ms, serializer=pool.job_serializer)
    expires_ms = max(score - now_ms, 0) + pool.expires_extra_ms
    job_id = job_id or uuid4().hex
    tick = Prepared(job_id, function, payload, score, expires_ms, Enqueued(job_id, now, scheduled))
    (written,) = await _write(pool, queue_name, [tick])
    return written is True


async def enqueue_from_job(
    ctx: JobContext,
    function: JobFunction,
    *,
    _job_id: str | None = None,
    _priority: Priority | None = None,
    _then: Sequence[Then] = (),
    **kwargs: Any,
) -> str:
    """Fan out from inside a job: enqueue another job by its function; returns its id (for a unique job whose
    key is held, the id of the job that holds it). `_then=[then(child, "result_arg", ...)]` chains jobs after
    it (core/chains.py).

    Give the child an id derived from the parent's input (`_job_id=f"order-{order_id}:receipt"`) and a re-run
    of the parent (after a crash, or a retry) finds the child already there instead of adding it twice. The id
    is put in the platform's namespace (`platform:order-1:receipt`), where no client can take it first.
    `_priority`: "high", "default" or "low" (core/priority.py); the function's own when not given.
    """
    spec = spec_of(function)
    job_id = keys.child_job_id(_job_id) if _job_id is not None else None
    try:
        accepted = await enqueue(
            ctx["redis"],
            spec,
            kwargs,
            job_id=job_id,
            queue_name=ctx.get("queue_name"),
            priority=_priority,
            then=_then,
        )
    except DuplicateJob as exc:
        return exc.job_id
    return accepted.job_id
