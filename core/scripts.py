"""Every Lua script the platform runs. Each lives in a `.lua` file in `core/lua/`, is registered once per
pool (calls then go by EVALSHA, reloaded by redis-py after a Redis restart), and gets its keys from
`core.keys` through its caller: no script builds a key name of its own beyond the prefixes it is given.

Files named `_<name>.lua` are preludes: shared Lua functions (events, indexes, metrics) put in front of every
script, so each state change calls one line and stays in the same script as the change itself."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from core import events, job_index, job_limits, job_metrics, keys

LUA_DIR = Path(__file__).parent / "lua"
# Wake tokens kept at most: enough to wake every worker, bounded so an idle queue never grows.
MAX_WAKE_TOKENS = 256


# Names the preludes use, filled in from the modules that own them (`__NAME__` in a `_*.lua` file).
PRELUDE_CONSTANTS = {
    "EVENTS_STREAM": events.STREAM,
    "EVENTS_MAX": str(events.EVENTS_MAX),
    "JOB_STREAM_PREFIX": events.JOB_STREAM_PREFIX,
    "JOB_EVENTS_MAX": str(events.JOB_EVENTS_MAX),
    "INDEX_PREFIX": job_index.PREFIX,
    "INDEX_BAND": str(job_index.BAND),
    "INDEX_FUNCTIONS": job_index.FUNCTIONS,
    "METRICS_COUNTS": job_metrics.COUNTS_KEY,
    "METRICS_HIST": job_metrics.HIST_KEY,
    "THROUGHPUT_PREFIX": keys.THROUGHPUT_PREFIX,
    "THROUGHPUT_TTL_S": str(keys.THROUGHPUT_TTL_S),
    "UNSTORED_EVENTS_PX": str(events.UNSTORED_EVENTS_PX),
    "PRIORITY_PREFIX": keys.PRIORITY_PREFIX,
    "JOB_RATE_PREFIX": keys.JOB_RATE_PREFIX,
    "JOB_SLOTS_PREFIX": keys.JOB_SLOTS_PREFIX,
    "JOB_LIMITED_PREFIX": keys.JOB_LIMITED_PREFIX,
    "JOB_LIMITED_PX": str(job_limits.LIMITED_MARK_MS),
    "JOB_WAITING_PREFIX": keys.JOB_WAITING_PREFIX,
    "JOB_WAITING_PX": str(job_limits.LIMITED_EVENT_EVERY_MS),
    # Chains and unique jobs (_workflow_*.lua).
    "CHAIN_PREFIX": keys.CHAIN_PREFIX,
    "JOB_PREFIX": keys.JOB_PREFIX,
    "LEASE_PREFIX": keys.LEASE_PREFIX,
}


@cache
def preludes() -> str:
    """Every `_*.lua` file, in name order: local functions every script may call."""
    text = "".join(path.read_text() + "\n" for path in sorted(LUA_DIR.glob("_*.lua")))
    for name, value in PRELUDE_CONSTANTS.items():
        text = text.replace(f"__{name}__", value)
    return text


@cache
def source(name: str) -> str:
    return preludes() + (LUA_DIR / f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    """The platform's scripts, bound to one pool."""

    enqueue: AsyncScript
    claim: AsyncScript
    renew: AsyncScript
    finish: AsyncScript
    abort: AsyncScript
    requeue_dead: AsyncScript
    release_lock: AsyncScript
    progress: AsyncScript
    metrics: AsyncScript
    trim_index: AsyncScript


def scripts(pool: Redis) -> Scripts:
    """The scripts of this pool, registered on first use."""
    bound: Scripts | None = getattr(pool, "_platform_scripts", None)
    if bound is None:
        bound = Scripts(**{f.name: pool.register_script(source(f.name)) for f in fields(Scripts)})
        pool._platform_scripts = bound  # type: ignore[attr-defined]
    return bound
