"""Raw arq as its users have it: a plain `WorkerSettings`, a plain `noop`, pickle (arq's default codec).

Started as `python -m arq bench.arq_workers.DefaultSettings` (or `TunedSettings`) with `REDIS_URL` set by
the benchmark; there is deliberately no fallback to a local Redis.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.logs import default_log_config

from bench.keys import READY_KEY


def _redis_settings() -> RedisSettings:
    url = os.environ.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set: the benchmark starts its own Redis and passes its URL")
    return RedisSettings.from_dsn(url)


async def noop(ctx: dict[str, Any]) -> None:
    """Do nothing."""


async def announce(ctx: dict[str, Any]) -> None:
    """Tell the benchmark this process is up (one SADD at start-up, nothing per job)."""
    await ctx["redis"].sadd(READY_KEY, os.getpid())


class DefaultSettings:
    """arq at its defaults: poll_delay 0.5 s, max_jobs 10, INFO logs."""

    functions: ClassVar[list[Any]] = [noop]
    redis_settings = _redis_settings()
    on_startup = announce


class TunedSettings:
    """arq tuned the usual way: max_jobs 100, poll_delay 10 ms, WARNING logs (`WARNING_LOGS`)."""

    functions: ClassVar[list[Any]] = [noop]
    redis_settings = _redis_settings()
    on_startup = announce
    max_jobs = 100
    poll_delay = 0.01


WARNING_LOGS: dict[str, Any] = default_log_config(verbose=False)
WARNING_LOGS["handlers"]["arq.standard"]["level"] = "WARNING"
WARNING_LOGS["loggers"]["arq"]["level"] = "WARNING"
