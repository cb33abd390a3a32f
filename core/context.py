"""The context every job receives as its first argument (arq's `ctx` dict, typed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from arq.connections import ArqRedis


class JobContext(TypedDict, total=False):
    """What arq puts in `ctx`, plus the platform's additions (its queue, settings and function name)."""

    redis: ArqRedis
    job_id: str
    function: str
    job_try: int
    enqueue_time: datetime
    score: int
    queue_name: str
    settings: Any
