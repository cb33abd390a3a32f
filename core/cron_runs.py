"""The record of each cron job's runs, kept in Redis so the API can show the last run of every schedule and
count the ticks that never ran. Read defensively: a field that is not what the worker writes is ignored."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from arq.connections import ArqRedis

from core import keys

log = structlog.get_logger("core")
# Ticks that ran, kept per cron job: the window in which a tick that did not run is counted as missed.
TICKS_KEPT = 200


@dataclass(frozen=True)
class CronRuns:
    """What GET /v1/cron shows of one cron job's runs."""

    last_job_id: str | None = None
    last_started_at: float | None = None
    last_finished_at: float | None = None
    last_status: str | None = None
    last_duration_s: float | None = None
    last_error: str | None = None
    runs: int = 0
    ran_ticks_ms: frozenset[int] = frozenset()


def tick_of(name: str, job_id: str) -> int | None:
    """The tick (unix ms) a cron job id is for: the platform names it `platform:cron:<name>:<tick ms>`; None for
    any other id (a run-now job)."""
    prefix = keys.cron_tick_job_id(name, 0).removesuffix("0")
    tick = job_id.removeprefix(prefix)
    return int(tick) if job_id.startswith(prefix) and tick.isdigit() else None


async def record_start(redis: ArqRedis, name: str, job_id: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.cron_runs(name), mapping={"last_started_at": time.time(), "last_job_id": job_id})
        tick = tick_of(name, job_id)
        if tick is not None:
            pipe.zadd(keys.cron_ticks(name), {str(tick): tick})
            pipe.zremrangebyrank(keys.cron_ticks(name), 0, -TICKS_KEPT - 1)
        await pipe.execute()


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


def _number(row: dict[str, str], field: str, name: str) -> float | None:
    value = row.get(field)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        log.warning("record.malformed", record="cron", name=name, field=field)
        return None


async def read_runs(redis: ArqRedis, names: list[str]) -> dict[str, CronRuns]:
    """name -> its runs (empty when it never ran), in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.cron_runs(name))
            pipe.zrange(keys.cron_ticks(name), 0, -1)
        rows = await pipe.execute()
    found: dict[str, CronRuns] = {}
    for index, name in enumerate(names):
        raw, ticks = rows[2 * index], rows[2 * index + 1]
        row = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
        runs = _number(row, "runs", name)
        found[name] = CronRuns(
            last_job_id=row.get("last_job_id") or None,
            last_started_at=_number(row, "last_started_at", name),
            last_finished_at=_number(row, "last_finished_at", name),
            last_status=row.get("last_status") or None,
            last_duration_s=_number(row, "last_duration_s", name),
            last_error=row.get("last_error") or None,
            runs=int(runs) if runs is not None and runs >= 0 else 0,
            ran_ticks_ms=frozenset(int(t) for t in ticks if t.isdigit()),
        )
    return found
