"""Dead letters: jobs that failed for good (tries exhausted, a fatal error, a poison job), kept in Redis with
their kwargs and error until deleted or requeued. The worker writes one in the same script that ends the job
(core/worker/record.py); its failed tries stay in the job's attempts list, kept as long as the letter.
Records are read defensively: one that is not a dead letter is skipped and logged, never an error."""

from __future__ import annotations

import time
from typing import Any

import structlog
from arq.connections import ArqRedis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import attempts, codec, events, keys, wire
from core.attempts import Attempt
from core.codec import ErrorKind
from core.scripts import MAX_WAKE_TOKENS, scripts

log = structlog.get_logger("core")


class DeadLetter(BaseModel):  # type: ignore[no-redef]  # pydantic's mypy plugin trips on a field named kwargs
    model_config = ConfigDict(extra="ignore")

    job_id: str
    function: str | None
    kwargs: dict[str, Any]
    tries: int
    reason: str
    kind: str = ErrorKind.exception
    error_type: str
    error_message: str
    traceback: str | None = None
    queue: str
    failed_at: float = Field(default_factory=time.time)
    attempts: list[Attempt] = Field(default_factory=list, exclude=True)  # read from the job's attempts list

    @property
    def requeueable(self) -> bool:
        return self.function is not None


def encode(letter: DeadLetter) -> bytes:
    return codec.dumps(letter.model_dump(mode="json"))


def _parse(job_id: str, raw: bytes | None) -> DeadLetter | None:
    if raw is None:
        return None
    try:
        return DeadLetter.model_validate(codec.loads(raw))
    except (ValueError, TypeError, ValidationError):
        log.warning("record.malformed", record="dead_letter", job_id=job_id)
        return None


async def _load(redis: ArqRedis, ids: list[str]) -> list[DeadLetter]:
    """The letters of these ids with their tries, in one round trip; an expired one leaves the index."""
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.get(keys.dead_letter(job_id))
            pipe.lrange(keys.attempts(job_id), 0, -1)
        rows = await pipe.execute()
    letters, expired = [], []
    for index, job_id in enumerate(ids):
        raw, history = rows[2 * index], rows[2 * index + 1]
        if raw is None:
            expired.append(job_id)
            continue
        letter = _parse(job_id, raw)
        if letter is not None:
            letter.attempts = attempts.with_lost_tries(attempts.parse(history), letter.tries)
            letters.append(letter)
    if expired:  # their TTL ran out; drop them from the index too
        await redis.zrem(keys.DEAD_LETTERS, *expired)
    return letters


async def get(redis: ArqRedis, job_id: str) -> DeadLetter | None:
    found = await _load(redis, [job_id])
    return found[0] if found else None


async def page(redis: ArqRedis, offset: int, limit: int, function: str | None = None) -> tuple[int, list[DeadLetter]]:
    """Newest first. Filtering by function reads every dead letter; fine for thousands, not millions."""
    if function is None:
        total = await redis.zcard(keys.DEAD_LETTERS)
        ids = [i.decode() for i in await redis.zrevrange(keys.DEAD_LETTERS, offset, offset + limit - 1)]
        return total, await _load(redis, ids)
    everything = await _load(redis, [i.decode() for i in await redis.zrevrange(keys.DEAD_LETTERS, 0, -1)])
    matching = [letter for letter in everything if letter.function == function]
    return len(matching), matching[offset : offset + limit]


async def ids_of_function(redis: ArqRedis, function: str) -> list[str]:
    _, letters = await page(redis, 0, 1 << 30, function)
    return [letter.job_id for letter in letters]


async def all_ids(redis: ArqRedis) -> list[str]:
    return [i.decode() for i in await redis.zrange(keys.DEAD_LETTERS, 0, -1)]


async def delete(redis: ArqRedis, job_ids: list[str]) -> int:
    if not job_ids:
        return 0
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(*[keys.dead_letter(i) for i in job_ids])
        pipe.zrem(keys.DEAD_LETTERS, *job_ids)
        pipe.delete(*[keys.attempts(i) for i in job_ids])
        pipe.delete(*[events.job_stream(i) for i in job_ids])  # a forgotten job's history goes with it
        deleted, *_ = await pipe.execute()
    return int(deleted)


async def requeue(redis: ArqRedis, queue_name: str, job_id: str) -> str:
    """Put a dead job back on the queue under its own id with its original kwargs and fresh tries.

    Returns `requeued`, `not_found`, `already_queued` or `not_requeueable` (its payload was unreadable).
    """
    letter = await get(redis, job_id)
    if letter is None:
        return "not_found"
    if not letter.requeueable or letter.function is None:
        return "not_requeueable"
    now_ms = int(time.time() * 1000)
    script_keys = [
        keys.dead_letter(job_id),
        keys.DEAD_LETTERS,
        keys.job(job_id),
        keys.result(job_id),
        keys.retry(job_id),
        queue_name,
        keys.attempts(job_id),
        keys.wake(queue_name),
        keys.holder(job_id),
    ]
    payload = wire.encode_job(letter.function, letter.kwargs, now_ms)
    args: list[str | bytes | int] = [job_id, payload, now_ms, redis.expires_extra_ms, MAX_WAKE_TOKENS, letter.function]
    outcome = await scripts(redis).requeue_dead(keys=script_keys, args=args)
    return outcome.decode() if isinstance(outcome, bytes) else str(outcome)
