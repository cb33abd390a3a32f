"""Live workers: each worker process announces itself in Redis on a heartbeat (core/worker/heartbeat.py), so
the API can list workers and `/ready` can tell that at least one is alive. A worker that stops beating drops
out of the list after `3 x HEALTH_CHECK_INTERVAL_SECONDS`. Records are read defensively: one that is not a
worker's is skipped and logged, so a stray value never turns `/ready` into a 500."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field

import structlog
from arq.connections import ArqRedis
from pydantic import BaseModel, ConfigDict, ValidationError

from core import codec, keys

log = structlog.get_logger("core")
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


class _StatsRecord(BaseModel):
    complete: int = 0
    failed: int = 0
    retried: int = 0
    ongoing: int = 0


class WorkerRecord(BaseModel):
    """A heartbeat as read back."""

    model_config = ConfigDict(extra="ignore")

    worker_id: str
    host: str
    pid: int
    queue: str
    started_at: float
    last_seen: float
    stats: _StatsRecord


def new_worker_info(queue: str) -> WorkerInfo:
    host = socket.gethostname()
    pid = os.getpid()
    return WorkerInfo(f"{host}:{pid}:{uuid.uuid4().hex[:6]}", host, pid, queue, started_at=time.time())


def stale_before(now: float, interval_s: float) -> float:
    """Workers last seen before this are dead: they missed MISSED_BEATS_BEFORE_DEAD heartbeats."""
    return now - interval_s * MISSED_BEATS_BEFORE_DEAD


async def live_workers(redis: ArqRedis) -> list[WorkerRecord]:
    """Workers whose heartbeat key has not expired, oldest first."""
    worker_ids = await redis.zrange(keys.WORKERS, 0, -1)
    if not worker_ids:
        return []
    return records_of(worker_ids, await redis.mget([keys.worker(w.decode()) for w in worker_ids]))


def records_of(worker_ids: list[bytes], raw: list[bytes | None]) -> list[WorkerRecord]:
    """The records of live workers, from their ids and their keys' values (None: expired, so not alive)."""
    found = []
    for worker_id, value in zip(worker_ids, raw, strict=True):
        if value is None:
            continue
        try:
            found.append(WorkerRecord.model_validate(codec.loads(value)))
        except (ValueError, TypeError, ValidationError):
            log.warning("record.malformed", record="worker", worker_id=worker_id.decode(errors="replace"))
    return found
