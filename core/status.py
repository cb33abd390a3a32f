"""One job's state, read from arq's keys and the platform's progress key in a single round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from arq.connections import ArqRedis

from core import attempts, codec, job_limits, keys, priority, wire
from core.attempts import Attempt
from core.codec import ErrorKind
from core.progress import Progress, parse_progress


class JobState(StrEnum):
    pending = "pending"  # a chain's child waiting for its parent to succeed
    deferred = "deferred"
    queued = "queued"
    in_progress = "in_progress"
    complete = "complete"
    failed = "failed"
    aborted = "aborted"
    not_run = "not_run"  # a chain's child whose parent failed for good, died or was aborted

    @property
    def finished(self) -> bool:
        return self in (JobState.complete, JobState.failed, JobState.aborted, JobState.not_run)


@dataclass(frozen=True)
class JobFailure:
    type: str
    message: str
    kind: str = ErrorKind.exception
    traceback: str | None = None


@dataclass
class JobRecord:
    """Everything the platform knows about one job."""

    job_id: str
    function: str | None
    kwargs: dict[str, Any]
    status: JobState
    tries: int
    enqueued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress | None = None
    result: Any = None
    error: JobFailure | None = None
    attempts: list[Attempt] = field(default_factory=list)
    priority: str | None = None  # while it waits or runs (its payload says; core/priority.py)
    waiting_on: str | None = None  # a queued job passed over for its function's limit (core/job_limits.py)
    unique_key: str | None = None  # the uniqueness lock a unique job holds while queued or running (core/unique.py)
    parent: str | None = None  # the job it is chained after
    children: list[ChainLink] = field(default_factory=list)  # the jobs chained after it
    result_arg: str | None = None  # a child's argument that receives its parent's result
    reason: str | None = None  # why a chained job did not run


@dataclass(frozen=True)
class ChainLink:
    job_id: str
    function: str
    result_arg: str


def _links(raw: dict[bytes, bytes]) -> tuple[list[ChainLink], str | None, str | None]:
    """A job's links hash (core/chains.py): its children, its parent and its result argument."""
    children = []
    try:
        for entry in codec.loads(raw.get(b"children") or b"[]"):
            children.append(ChainLink(str(entry[0]), str(entry[1]), str(entry[2])))
    except (ValueError, TypeError, IndexError):
        pass
    parent, arg = raw.get(b"parent"), raw.get(b"arg")
    return children, parent.decode() if parent else None, arg.decode() if arg else None


def _unrun(job_id: str, raw: dict[bytes, bytes]) -> JobRecord | None:
    """A chained job not (or never) enqueued: pending on its parent, or not run and why."""
    status = raw.get(b"status")
    if status not in (b"pending", b"not_run"):
        return None
    try:
        kwargs = codec.loads(raw.get(b"kwargs") or b"{}")
    except ValueError:
        kwargs = {}
    reason = raw.get(b"reason")
    return JobRecord(
        job_id=job_id,
        function=(raw.get(b"function") or b"").decode() or None,
        kwargs=kwargs if isinstance(kwargs, dict) else {},
        status=JobState.pending if status == b"pending" else JobState.not_run,
        tries=0,
        reason=reason.decode() if reason else None,
    )


def _dt(ms: object) -> datetime | None:
    """Milliseconds since the epoch as a UTC time; anything else (a stray record) as None."""
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _kwargs(data: dict[str, Any] | None) -> dict[str, Any]:
    value = data.get("k") if data else None
    return value if isinstance(value, dict) else {}


def _from_result(job_id: str, raw: bytes, progress: Progress | None) -> JobRecord:
    data = wire.decode_result(raw)
    if data is None:
        unreadable = ErrorKind.unreadable_payload
        failure = JobFailure(codec.KIND_TYPES[unreadable], "the stored result is not valid JSON", unreadable)
        return JobRecord(job_id, None, {}, JobState.failed, 0, error=failure, progress=progress)
    outcome = data.get("r")
    if data.get("s") is True:
        status, result, error = JobState.complete, outcome, None
    elif isinstance(outcome, codec.JobError):
        status = JobState.aborted if outcome.aborted else JobState.failed
        kind = ErrorKind.aborted if outcome.aborted else outcome.kind
        type_ = codec.KIND_TYPES[ErrorKind.aborted] if outcome.aborted else outcome.type
        result, error = None, JobFailure(type_, outcome.message, kind, outcome.traceback)
    else:
        status, result, error = JobState.failed, None, JobFailure("Error", str(outcome))
    function = data.get("f")
    tries = data.get("t")
    return JobRecord(
        job_id=job_id,
        function=function if isinstance(function, str) and function else None,
        kwargs=_kwargs(data),
        status=status,
        tries=tries if isinstance(tries, int) else 0,
        enqueued_at=_dt(data.get("et")),
        scheduled_at=_dt(data.get("sc")),
        started_at=_dt(data.get("st")),
        finished_at=_dt(data.get("ft")),
        progress=progress,
        result=result,
        error=error,
    )


async def read_job(pool: ArqRedis, queue_name: str, job_id: str) -> JobRecord | None:
    """The job's current record, or None when Redis holds nothing about it."""
    async with pool.pipeline(transaction=False) as pipe:
        pipe.get(keys.result(job_id))
        pipe.get(keys.job(job_id))
        pipe.get(keys.in_progress(job_id))
        pipe.zscore(queue_name, job_id)
        pipe.get(keys.retry(job_id))
        pipe.get(keys.progress(job_id))
        pipe.lrange(keys.attempts(job_id), 0, -1)
        pipe.hgetall(keys.chain(job_id))
        pipe.hkeys(keys.job_limits(queue_name))  # the functions with limits (usually none): no round trip of its own
        result_raw, job_raw, lease, score, retries, progress_raw, attempts_raw, links, limited = await pipe.execute()
    record = _read(job_id, result_raw, job_raw, lease, score, retries, progress_raw, attempts_raw)
    if (
        record is not None
        and record.status is JobState.queued
        and record.function is not None
        and record.function.encode() in limited
    ):  # only a queued job of a limited function asks whether a claim passed it over
        record.waiting_on = await job_limits.waiting_on(pool, queue_name, record.function)
    if links:
        record = record or _unrun(job_id, links)
        if record is not None:
            record.children, record.parent, record.result_arg = _links(links)
            if record.status is JobState.not_run:
                record.reason = (links.get(b"reason") or b"").decode() or None
    return record


def _read(
    job_id: str,
    result_raw: bytes | None,
    job_raw: bytes | None,
    lease: bytes | None,
    score: float | None,
    retries: bytes | None,
    progress_raw: bytes | None,
    attempts_raw: list[bytes],
) -> JobRecord | None:
    progress = parse_progress(progress_raw)
    if result_raw is not None:
        record = _from_result(job_id, result_raw, progress)
        record.attempts = attempts.parse(attempts_raw)
        return record
    if job_raw is None and score is None and lease is None:
        return None
    data = wire.decode_result(job_raw) if job_raw is not None else None
    if lease is not None:
        status = JobState.in_progress
    elif score is not None and score > time.time() * 1000:
        status = JobState.deferred
    else:
        status = JobState.queued
    tries = int(retries) if retries is not None and retries.isdigit() else 0
    function = data.get("f") if data else None
    level = data.get("p") if data and data.get("p") in priority.PRIORITIES else "default"
    if level == "low" and score is not None:  # arq's queue holds it until its aging is out: show when it is due
        score -= priority.low_aging_ms()
        if lease is None:
            status = JobState.deferred if score > time.time() * 1000 else JobState.queued
    return JobRecord(
        job_id=job_id,
        function=function if isinstance(function, str) else None,
        kwargs=_kwargs(data),
        status=status,
        tries=tries,
        enqueued_at=_dt(data.get("et")) if data else None,
        scheduled_at=_dt(score),
        started_at=_dt(wire.lease_started_ms(lease)) if lease is not None else None,
        progress=progress,
        attempts=attempts.parse(attempts_raw),
        priority=level,
        unique_key=data.get("u") if data and isinstance(data.get("u"), str) else None,
    )


class Presence(StrEnum):
    missing = "missing"
    pending = "pending"  # queued, deferred, running or waiting for its retry
    finished = "finished"


async def job_presence(pool: ArqRedis, queue_name: str, job_id: str) -> Presence:
    """Whether the job exists and has finished, by the same keys as `read_job` but without reading them: an
    event stream needs no more, and a job's kwargs may weigh megabytes."""
    async with pool.pipeline(transaction=False) as pipe:
        pipe.exists(keys.result(job_id))
        pipe.exists(keys.job(job_id), keys.in_progress(job_id))
        pipe.zscore(queue_name, job_id)
        result, pending, score = await pipe.execute()
    if result:
        return Presence.finished
    return Presence.pending if pending or score is not None else Presence.missing
