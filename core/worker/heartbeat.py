"""The worker's heartbeat in the platform's live-workers set (read by core/workers.py for `/v1/workers`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from core import codec, job_index, keys
from core.scripts import scripts
from core.workers import MISSED_BEATS_BEFORE_DEAD, WorkerInfo, WorkerStats, stale_before

log = structlog.get_logger("worker")


# Per function the worker runs: how long its results and its dead letters are kept (ms; None for ever).
IndexKeeps = Sequence[tuple[str, int | None, int | None]]


async def beat(redis: ArqRedis, info: WorkerInfo, interval_s: float, index_keeps: IndexKeeps = ()) -> None:
    """Publish the worker's info once: a key with a TTL and its score in the live-workers set; in the same round
    trip, trim the job index of the functions this worker runs as their results expire."""
    info.last_seen = time.time()
    ttl_ms = int(interval_s * MISSED_BEATS_BEFORE_DEAD * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.worker(info.worker_id), codec.dumps(asdict(info)), px=ttl_ms)
        pipe.zadd(keys.WORKERS, {info.worker_id: info.last_seen})
        pipe.zremrangebyscore(keys.WORKERS, "-inf", stale_before(info.last_seen, interval_s))
        if index_keeps:
            args = job_index.trim_args(index_keeps, int(info.last_seen * 1000))
            await scripts(redis).trim_index(keys=[], args=args, client=pipe)  # queued on the pipeline
        await pipe.execute()


async def beat_forever(
    redis: ArqRedis,
    info: WorkerInfo,
    interval_s: float,
    counters: Callable[[], WorkerStats],
    index_keeps: IndexKeeps = (),
) -> None:
    """Heartbeat loop, publishing the worker's own counters; a Redis outage is logged and ridden out."""
    while True:
        info.stats = counters()
        try:
            await beat(redis, info, interval_s, index_keeps)
        except (RedisError, OSError) as exc:
            log.warning("worker.heartbeat_failed", error=type(exc).__name__)
        await asyncio.sleep(interval_s)


async def forget(redis: ArqRedis, info: WorkerInfo) -> None:
    with suppress(RedisError, OSError):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.worker(info.worker_id))
            pipe.zrem(keys.WORKERS, info.worker_id)
            await pipe.execute()
