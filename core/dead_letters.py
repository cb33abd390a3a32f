"""Dead letters: jobs that failed for good (tries exhausted, a fatal error, a poison job), kept in Redis with
their kwargs and error history until deleted or requeued. Nothing that was accepted is silently dropped."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio.client import Pipeline

from core import codec, keys


@dataclass
class DeadLetter:
    job_id: str
    function: str | None
    kwargs: dict[str, Any]
    tries: int
    reason: str
    error_type: str
    error_message: str
    queue: str
    failed_at: float = field(default_factory=time.time)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def requeueable(self) -> bool:
        return self.function is not None


def stage(pipe: Pipeline, letter: DeadLetter, ttl_s: float) -> None:
    """Add the dead letter's writes to a pipeline (so it lands in the same transaction as the job's end)."""
    pipe.set(keys.dead_letter(letter.job_id), codec.dumps(asdict(letter)), px=int(ttl_s * 1000) if ttl_s else None)
    pipe.zadd(keys.DEAD_LETTERS, {letter.job_id: letter.failed_at})


def _parse(raw: bytes | None) -> DeadLetter | None:
    if raw is None:
        return None
    try:
        return DeadLetter(**codec.loads(raw))
    except (ValueError, TypeError):
        return None


async def get(redis: ArqRedis, job_id: str) -> DeadLetter | None:
    return _parse(await redis.get(keys.dead_letter(job_id)))


async def page(redis: ArqRedis, offset: int, limit: int, function: str | None = None) -> tuple[int, list[DeadLetter]]:
    """Newest first. Filtering by function reads every dead letter; fine for thousands, not millions."""
    if function is None:
        total = await redis.zcard(keys.DEAD_LETTERS)
        ids = [i.decode() for i in await redis.zrevrange(keys.DEAD_LETTERS, offset, offset + limit - 1)]
        letters = await _load(redis, ids)
        return total, letters
    everything = await _load(redis, [i.decode() for i in await redis.zrevrange(keys.DEAD_LETTERS, 0, -1)])
    matching = [letter for letter in everything if letter.function == function]
    return len(matching), matching[offset : offset + limit]


async def _load(redis: ArqRedis, ids: list[str]) -> list[DeadLetter]:
    if not ids:
        return []
    raw = await redis.mget([keys.dead_letter(i) for i in ids])
    letters, expired = [], []
    for job_id, value in zip(ids, raw, strict=True):
        letter = _parse(value)
        if letter is None:
            expired.append(job_id)
        else:
            letters.append(letter)
    if expired:  # their TTL ran out; drop them from the index too
        await redis.zrem(keys.DEAD_LETTERS, *expired)
    return letters


async def ids_of_function(redis: ArqRedis, function: str) -> list[str]:
    _, letters = await page(redis, 0, 1 << 30, function)
    return [letter.job_id for letter in letters]


async def delete(redis: ArqRedis, job_ids: list[str]) -> int:
    if not job_ids:
        return 0
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(*[keys.dead_letter(i) for i in job_ids])
        pipe.zrem(keys.DEAD_LETTERS, *job_ids)
        deleted, _ = await pipe.execute()
    return int(deleted)


# Atomic: only a job that is still dead, and not already queued again, is put back on the queue.
_REQUEUE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'already_queued' end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[7], KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('LPUSH', KEYS[8], '1')
redis.call('LTRIM', KEYS[8], 0, 255)
return 'requeued'
"""


async def requeue(redis: ArqRedis, queue_name: str, job_id: str) -> str:
    """Put a dead job back on the queue under its own id with its original kwargs and fresh tries.

    Returns `requeued`, `not_found`, `already_queued` or `not_requeueable` (its payload was unreadable).
    """
    letter = await get(redis, job_id)
    if letter is None:
        return "not_found"
    if not letter.requeueable:
        return "not_requeueable"
    now_ms = int(time.time() * 1000)
    payload = codec.dumps({"t": None, "f": letter.function, "a": [], "k": letter.kwargs, "et": now_ms})
    script_keys = [
        keys.dead_letter(job_id),
        keys.DEAD_LETTERS,
        keys.job(job_id),
        keys.result(job_id),
        keys.retry(job_id),
        queue_name,
        keys.attempts(job_id),
        keys.wake(queue_name),
    ]
    args = [job_id, payload.decode(), str(now_ms), str(redis.expires_extra_ms)]
    outcome = await redis.eval(_REQUEUE_SCRIPT, len(script_keys), *script_keys, *args)  # type: ignore[misc]
    return outcome.decode() if isinstance(outcome, bytes) else str(outcome)
