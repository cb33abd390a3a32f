"""Aborting a job. A job no worker has claimed is aborted on the spot, atomically, so it is aborted
even when no worker runs; a running job is handed to arq's abort set and its worker cancels it."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from arq.connections import ArqRedis

from core import codec, keys

# Atomic against the worker's claim, itself a script: a job is either claimed (running) or removed here.
_ABORT_SCRIPT = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 'finished' end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
  return 'aborting'
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 'not_found' end
redis.call('DEL', KEYS[2], KEYS[5])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[4])
end
return 'aborted'
"""


class AbortOutcome(StrEnum):
    aborted = "aborted"
    aborting = "aborting"
    finished = "finished"
    not_found = "not_found"


async def abort_job(pool: ArqRedis, queue_name: str, job_id: str, keep_result_s: float) -> AbortOutcome:
    """Abort a queued, deferred or running job; says what happened."""
    now_ms = int(time.time() * 1000)
    raw = await pool.get(keys.job(job_id))
    try:
        job = codec.loads(raw) if raw else {}
    except ValueError:
        job = {}
    result: dict[str, Any] = {
        "t": job.get("t") or 0,
        "f": job.get("f"),
        "a": [],
        "k": job.get("k") or {},
        "et": job.get("et") or now_ms,
        "s": False,
        "r": codec.JobError(codec.ABORTED_ERROR_TYPE, "aborted before it started"),
        "st": now_ms,
        "ft": now_ms,
        "q": queue_name,
        "id": job_id,
    }
    script_keys = [
        queue_name,
        keys.job(job_id),
        keys.in_progress(job_id),
        keys.result(job_id),
        keys.retry(job_id),
        keys.ABORT_SET,
    ]
    args = [job_id, codec.dumps(result).decode(), str(now_ms), str(int(keep_result_s * 1000))]
    outcome = await pool.eval(_ABORT_SCRIPT, len(script_keys), *script_keys, *args)  # type: ignore[misc]
    return AbortOutcome(outcome.decode() if isinstance(outcome, bytes) else outcome)
