"""The history of a job's failed tries (time, error type, message), kept in Redis beside the job."""

from __future__ import annotations

import time
from typing import Any

from arq.connections import ArqRedis

from core import codec, keys

ATTEMPTS_TTL_S = 30 * 86_400
WORKER_LOST = "WorkerLost"


def attempt(
    job_try: int, error_type: str, message: str, duration_s: float | None, retry_in_s: float | None
) -> dict[str, Any]:
    return {
        "try": job_try,
        "at": time.time(),
        "error_type": error_type,
        "message": message,
        "duration_s": None if duration_s is None else round(duration_s, 4),
        "retry_in_s": None if retry_in_s is None else round(retry_in_s, 3),
    }


async def record(redis: ArqRedis, job_id: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Append one failed try; returns the whole history, in one round trip."""
    key = keys.attempts(job_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(key, codec.dumps(entry))
        pipe.expire(key, ATTEMPTS_TTL_S)
        pipe.lrange(key, 0, -1)
        *_, raw = await pipe.execute()
    return parse(raw)


def parse(raw: list[bytes] | None) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    for item in raw or []:
        try:
            history.append(codec.loads(item))
        except ValueError:
            continue
    return history


def with_lost_tries(history: list[dict[str, Any]], last_try: int) -> list[dict[str, Any]]:
    """Fill in the tries up to `last_try` that left no record: their worker died while running them."""
    seen = {entry.get("try") for entry in history}
    lost = [
        attempt(n, WORKER_LOST, "the worker stopped while running this try", None, None)
        for n in range(1, last_try + 1)
        if n not in seen
    ]
    for entry in lost:
        entry["at"] = None
    return sorted(history + lost, key=lambda entry: int(entry.get("try") or 0))
