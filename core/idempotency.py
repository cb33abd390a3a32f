"""Making an effect idempotent. Jobs run at least once: after a crash, a job whose worker died mid-try
runs again. Wrap the effect that must not happen twice (charge a card, send an email) in `once`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from arq import Retry
from pydantic_core import to_jsonable_python

from core import codec, keys
from core.context import JobContext
from core.scripts import scripts

T = TypeVar("T")
DEFAULT_TTL_S = 7 * 86_400


async def once(
    ctx: JobContext,
    key: str,
    effect: Callable[[], Awaitable[T]],
    *,
    ttl_s: float = DEFAULT_TTL_S,
    lock_s: float = 60,
) -> T:
    """Run `effect` once per `key`: a later run (a retry, a re-run after a crash, a duplicate enqueue)
    gets the first completed run's JSON result back instead of repeating the effect.

    A lock, held under the job's id, stops two different jobs from running the effect at the same time:
    the one that finds it taken retries when the lock would expire. The same job finding its own lock
    (its earlier try died holding it) takes it over at once. What remains is the gap between the effect
    finishing and its result being stored: a crash exactly there repeats the effect, so give the external
    call its own idempotency key too where the provider supports one (pass it `key`).
    """
    redis = ctx["redis"]
    done_key = keys.once(key)
    stored = await redis.get(done_key)
    if stored is not None:
        result: T = codec.loads(stored)["result"]
        return result
    lock_key, owner, lock_ms = keys.once_lock(key), ctx.get("job_id", "?"), int(lock_s * 1000)
    if not await redis.set(lock_key, owner, nx=True, px=lock_ms):
        if await redis.get(lock_key) != owner.encode():
            raise Retry(defer=max(await redis.pttl(lock_key), 100) / 1000)
        await redis.set(lock_key, owner, px=lock_ms)
    try:
        value = await effect()
        await redis.set(done_key, codec.dumps({"result": to_jsonable_python(value)}), px=int(ttl_s * 1000))
        return value
    finally:
        await scripts(redis).release_lock(keys=[lock_key], args=[owner])
