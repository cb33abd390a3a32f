"""One job's state, read from arq's keys and the platform's progress key in a single round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from arq.connections import ArqRedis

from core import attempts, codec, keys
from core.progress import parse_progress


class JobState(StrEnum):
    deferred = "deferred"
    queued = "queued"
    in_progress = "in_progress"
    complete = "complete"
    failed = "failed"
    aborted = "aborted"

    @property
    def finished(self) -> bool:
        return self in (JobState.complete, JobState.failed, JobState.aborted)


@dataclass(frozen=True)
class JobFailure:
    type: str
    message: str


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
    progress: dict[str, Any] | None = None
    result: Any = None
    error: JobFailure | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)


def _dt(ms: float | int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _decode(raw: bytes) -> dict[str, Any] | None:
    try:
        value = codec.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _from_result(job_id: str, raw: bytes, progress: dict[str, Any] | None) -> JobRecord:
    data = _decode(raw)
    if data is None:
        failure = JobFailure("DeserializationError", "the stored result is not valid JSON")
        return JobRecord(job_id, None, {}, JobState.failed, 0, error=failure, progress=progress)
    outcome = data.get("r")
    if data.get("s"):
        status, result, error = JobState.complete, outcome, None
    elif isinstance(outcome, codec.JobError):
        status = JobState.aborted if outcome.aborted else JobState.failed
        result, error = None, JobFailure(outcome.type, outcome.message)
    else:
        status, result, error = JobState.failed, None, JobFailure("Error", str(outcome))
    return JobRecord(
        job_id=job_id,
        function=data.get("f"),
        kwargs=data.get("k") or {},
        status=status,
        tries=int(data.get("t") or 0),
        enqueued_at=_dt(data.get("et")),
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
        pipe.exists(keys.in_progress(job_id))
        pipe.zscore(queue_name, job_id)
        pipe.get(keys.retry(job_id))
        pipe.get(keys.progress(job_id))
        pipe.lrange(keys.attempts(job_id), 0, -1)
        result_raw, job_raw, in_progress, score, retries, progress_raw, attempts_raw = await pipe.execute()
    progress = parse_progress(progress_raw)
    if result_raw is not None:
        record = _from_result(job_id, result_raw, progress)
        record.attempts = attempts.parse(attempts_raw)
        return record
    if job_raw is None and score is None and not in_progress:
        return None
    data = _decode(job_raw) if job_raw is not None else None
    if in_progress:
        status = JobState.in_progress
    elif score is not None and score > time.time() * 1000:
        status = JobState.deferred
    else:
        status = JobState.queued
    return JobRecord(
        job_id=job_id,
        function=data.get("f") if data else None,
        kwargs=(data.get("k") or {}) if data else {},
        status=status,
        tries=int(retries or 0),
        enqueued_at=_dt(data.get("et")) if data else None,
        scheduled_at=_dt(score),
        progress=progress,
        attempts=attempts.parse(attempts_raw),
    )
