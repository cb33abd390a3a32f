"""Pausing a cron schedule: the state lives in Redis, so every worker (which skips a paused schedule's ticks)
and every API replica (which shows it) sees the same. A pause's span is kept when it ends, so the ticks that
fell in it are not counted as missed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from arq.connections import ArqRedis

from core import keys

# Past pauses kept per schedule: older ones fall before the window missed ticks are counted in.
PAUSES_KEPT = 50


@dataclass(frozen=True)
class PauseState:
    paused: bool = False
    paused_at: float | None = None  # None when running (or when the record is not a time)
    past: tuple[tuple[int, int], ...] = ()  # ended pauses, (from, to) unix seconds

    def spans(self, now_s: float) -> tuple[tuple[int, int], ...]:
        """Every pause that touches the past, the current one up to now."""
        current = () if self.paused_at is None else ((int(self.paused_at), int(now_s) + 1),)
        return self.past + current


async def paused_names(redis: ArqRedis) -> set[str]:
    """The schedules paused now (the worker reads it only when a tick is due)."""
    return {name.decode() for name in await redis.hkeys(keys.CRON_PAUSED)}  # type: ignore[misc]


async def pause(redis: ArqRedis, name: str) -> None:
    """Pause a schedule; pausing a paused one keeps the time it was first paused."""
    await redis.hsetnx(keys.CRON_PAUSED, name, repr(time.time()))  # type: ignore[misc]


async def resume(redis: ArqRedis, name: str) -> None:
    """Resume a schedule and keep the pause's span; of concurrent resumes only the one that ends it records it."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hget(keys.CRON_PAUSED, name)
        pipe.hdel(keys.CRON_PAUSED, name)
        paused_at, removed = await pipe.execute()
    if not removed or paused_at is None:
        return
    try:
        start = int(float(paused_at))
    except ValueError:
        return
    end = int(time.time()) + 1
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.cron_pauses(name), {f"{start}:{end}": end})
        pipe.zremrangebyrank(keys.cron_pauses(name), 0, -PAUSES_KEPT - 1)
        await pipe.execute()


def _span(member: bytes) -> tuple[int, int] | None:
    start, _, end = member.decode(errors="replace").partition(":")
    return (int(start), int(end)) if start.isdigit() and end.isdigit() else None


async def read_states(redis: ArqRedis, names: list[str]) -> dict[str, PauseState]:
    """name -> its pause state, in one round trip (a malformed entry is ignored)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.CRON_PAUSED)
        for name in names:
            pipe.zrange(keys.cron_pauses(name), 0, -1)
        paused, *pasts = await pipe.execute()
    paused_at: dict[str, float | None] = {}
    for raw_name, raw_at in paused.items():
        try:
            paused_at[raw_name.decode()] = float(raw_at)
        except ValueError:
            paused_at[raw_name.decode()] = None
    states = {}
    for name, past in zip(names, pasts, strict=True):
        spans = tuple(span for span in map(_span, past) if span is not None)
        states[name] = PauseState(name in paused_at, paused_at.get(name), spans)
    return states
