"""The context every job receives as its first argument (arq's `ctx` dict, typed)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from arq.connections import ArqRedis

if TYPE_CHECKING:
    from core.workers import WorkerStats


class JobContext(TypedDict, total=False):
    """What arq puts in `ctx`, plus the platform's additions."""

    redis: ArqRedis
    job_id: str
    job_try: int
    enqueue_time: datetime
    score: int
    stats: WorkerStats
    queue_name: str
    settings: Any
