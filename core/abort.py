"""Aborting a job. A job no worker holds is aborted on the spot, atomically (core/lua/abort.lua), so it is
aborted even when no worker runs; a running job is handed to arq's abort set and its worker cancels it."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from arq.connections import ArqRedis

from core import codec, keys, wire
from core.codec import ErrorKind, JobError
from core.scripts import scripts


class AbortOutcome(StrEnum):
    aborted = "aborted"
    aborting = "aborting"
    finished = "finished"
    not_found = "not_found"


async def abort_job(pool: ArqRedis, queue_name: str, job_id: str, keep_result_s: float) -> AbortOutcome:
    """Abort a queued, deferred or running job; says what happened."""
    now_ms = int(time.time() * 1000)
    async with pool.pipeline(transaction=False) as pipe:
        pipe.get(keys.job(job_id))
        pipe.get(keys.retry(job_id))
        raw, tries_raw = await pipe.execute()
    tries = int(tries_raw) if tries_raw is not None and tries_raw.isdigit() else 0
    job: dict[str, Any] = {}
    if raw:
        try:
            decoded = codec.loads(raw)
            job = decoded if isinstance(decoded, dict) else {}
        except ValueError:
            pass
    header = wire.ResultHeader(
        job_id=job_id,
        function=str(job.get("f") or ""),
        args=(),
        kwargs=kwargs if isinstance(kwargs := job.get("k"), dict) else {},
        job_try=tries,  # a job waiting for its retry was tried already
        enqueue_time_ms=int(job.get("et") or now_ms),
        start_ms=None,
        finished_ms=now_ms,
        queue=queue_name,
    )
    message = "aborted while waiting for its next try" if tries else "aborted before it started"
    result = wire.failure_result(header, JobError.of_kind(ErrorKind.aborted, message))
    script_keys = [
        queue_name,
        keys.job(job_id),
        keys.in_progress(job_id),
        keys.result(job_id),
        keys.retry(job_id),
        keys.ABORT_SET,
        keys.holder(job_id),
    ]
    args: list[str | bytes | int] = [job_id, result, now_ms, int(keep_result_s * 1000), header.function]
    chain, parent, lock = job.get("c"), job.get("p"), job.get("u")
    if chain or parent or lock:  # a job of a chain, or a unique one (core/chains.py, core/unique.py)
        work = "end" if chain else "link" if parent else ""
        args += [work, lock if isinstance(lock, str) else "", f"its parent {job_id} was aborted"]
    outcome = await scripts(pool).abort(keys=script_keys, args=args)
    return AbortOutcome(outcome.decode() if isinstance(outcome, bytes) else outcome)
