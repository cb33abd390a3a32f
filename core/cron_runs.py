"""The record of each cron job's runs, kept in Redis so the API can show the last run of every schedule."""

from __future__ import annotations

import time
from typing import Any

from arq.connections import ArqRedis

from core import keys


async def record_start(redis: ArqRedis, name: str, job_id: str) -> None:
    await redis.hset(  # type: ignore[misc]
        keys.cron_runs(name), mapping={"last_started_at": time.time(), "last_job_id": job_id}
    )


async def record_end(redis: ArqRedis, name: str, status: str, duration_s: float, error: str | None) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(
            keys.cron_runs(name),
            mapping={
                "last_finished_at": time.time(),
                "last_status": status,
                "last_duration_s": round(duration_s, 4),
                "last_error": error or "",
            },
        )
        pipe.hincrby(keys.cron_runs(name), "runs", 1)
        await pipe.execute()


async def read_runs(redis: ArqRedis, names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> its last-run record (empty when it never ran)."""
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.cron_runs(name))
        rows = await pipe.execute()
    return {name: {k.decode(): v.decode() for k, v in row.items()} for name, row in zip(names, rows, strict=True)}
