"""Live workers: each worker process announces itself in Redis on a heartbeat, so the API can list
workers and `/ready` can tell that at least one is alive. A worker that stops beating drops out of the
list after `3 x HEALTH_CHECK_INTERVAL_SECONDS` (30 s by default)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from core import codec, keys

log = structlog.get_logger(__name__)
MISSED_BEATS_BEFORE_DEAD = 3


@dataclass
class WorkerStats:
    """Counters one worker process keeps about the jobs it ran."""

    complete: int = 0
    failed: int = 0
    retried: int = 0
    ongoing: int = 0


@dataclass
class WorkerInfo:
    """What a worker publishes on each heartbeat."""

    worker_id: str
    host: str
    pid: int
    queue: str
    started_at: float
    last_seen: float = 0.0
    stats: WorkerStats = field(default_factory=WorkerStats)


def new_worker_info(queue: str) -> WorkerInfo:
    host = socket.gethostname()
    pid = os.getpid()
    return WorkerInfo(f"{host}:{pid}:{uuid.uuid4().hex[:6]}", host, pid, queue, started_at=time.time())


def stale_before(now: float, interval_s: float) -> float:
    """Workers last seen before this are dead: they missed MISSED_BEATS_BEFORE_DEAD heartbeats."""
    return now - interval_s * MISSED_BEATS_BEFORE_DEAD


async def beat(redis: ArqRedis, info: WorkerInfo, interval_s: float) -> None:
    """Publish the worker's info once: a key with a TTL and its score in the live-workers set."""
    info.last_seen = time.time()
    ttl_ms = int(interval_s * MISSED_BEATS_BEFORE_DEAD * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.worker(info.worker_id), codec.dumps(asdict(info)), px=ttl_ms)
        pipe.zadd(keys.WORKERS, {info.worker_id: info.last_seen})
        pipe.zremrangebyscore(keys.WORKERS, "-inf", stale_before(info.last_seen, interval_s))
        await pipe.execute()


async def beat_forever(redis: ArqRedis, info: WorkerInfo, interval_s: float) -> None:
    """Heartbeat loop; a Redis outage is logged and ridden out, never fatal."""
    while True:
        try:
            await beat(redis, info, interval_s)
        except (RedisError, OSError) as exc:
            log.warning("worker.heartbeat_failed", error=type(exc).__name__)
        await asyncio.sleep(interval_s)


async def forget(redis: ArqRedis, info: WorkerInfo) -> None:
    with suppress(RedisError, OSError):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.worker(info.worker_id))
            pipe.zrem(keys.WORKERS, info.worker_id)
            await pipe.execute()


async def live_workers(redis: ArqRedis) -> list[dict[str, Any]]:
    """Workers whose heartbeat key has not expired, oldest first."""
    worker_ids = await redis.zrange(keys.WORKERS, 0, -1)
    if not worker_ids:
        return []
    raw = await redis.mget([keys.worker(w.decode()) for w in worker_ids])
    return [codec.loads(value) for value in raw if value is not None]
