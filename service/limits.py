"""Per-key limits: a request rate shared by every API process through Redis, and a cap on the result
waits and event streams one key holds open.

The rate is a fixed one-minute window per key in Redis (`INCRBY` on `platform:rate:<key>:<minute>`). To
keep Redis off the hot path, a process counts locally and adds its count to Redis at most every
SYNC_INTERVAL_S, and on every request once a key is within NEAR_FRACTION of its limit; so the limit is exact
near the edge and, across N processes, overshoots by at most what they serve in one interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from arq.connections import ArqRedis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from core import keys

log = structlog.get_logger("api")
WINDOW_S = 60
SYNC_INTERVAL_S = 0.05
NEAR_FRACTION = 0.8
WAIT_RETRY_AFTER_S = 1

_COUNT_SCRIPT = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return total
"""


@dataclass
class _Window:
    index: int
    total: int = 0  # the count in Redis as of the last sync, ours included
    pending: int = 0  # counted here, not yet added in Redis
    synced_at: float = -math.inf
    syncing: bool = False


class RateLimiter:
    """Admit or refuse one request of a key; refusals say how many seconds until the window turns."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, _Window] = {}
        self._script: AsyncScript | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, name: str, scope: MutableMapping[str, Any]) -> int | None:
        """None to admit, else the Retry-After in seconds."""
        if self.per_minute <= 0:
            return None
        now = time.time()
        index = int(now // WINDOW_S)
        retry_after = max(1, math.ceil((index + 1) * WINDOW_S - now))
        window = self._windows.get(name)
        if window is None or window.index != index:
            window = self._windows[name] = _Window(index)
        if window.total + window.pending >= self.per_minute:
            return retry_after
        window.pending += 1
        near = window.total + window.pending >= self.per_minute * NEAR_FRACTION
        if window.syncing or not (near or time.monotonic() - window.synced_at >= SYNC_INTERVAL_S):
            return None
        pool: ArqRedis | None = scope.get("state", {}).get("pool")
        if pool is None:
            return None
        if not near:  # far from the limit: share the count in the background, never delay the request
            task = asyncio.create_task(self._sync(pool, name, window))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return None
        await self._sync(pool, name, window)
        return retry_after if window.total > self.per_minute else None

    async def _sync(self, pool: ArqRedis, name: str, window: _Window) -> None:
        """Add this process's pending count to the key's window in Redis and learn the total."""
        flush, window.pending, window.syncing = window.pending, 0, True
        try:
            if self._script is None:
                self._script = pool.register_script(_COUNT_SCRIPT)
            total = int(await self._script(keys=[keys.rate(name, window.index)], args=[flush, WINDOW_S * 2]))
        except (RedisError, OSError) as exc:  # the request itself meets the outage and answers 503
            window.pending += flush
            log.warning("api.rate_limit_unsynced", error=type(exc).__name__)
        else:
            window.total = max(window.total, total)
        finally:
            window.syncing = False
            window.synced_at = time.monotonic()


class TooManyWaits(Exception):
    """A key already holds its share of open result waits or event streams."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this key already holds {limit} open result waits or event streams; retry shortly")
        self.limit = limit


class WaitSlots:
    """Open result waits and event streams per key, in this process. Issue 8's streams take a slot too."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._held: Counter[str] = Counter()

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        if self._held[name] >= self.per_key:
            raise TooManyWaits(self.per_key)
        self._held[name] += 1
        try:
            yield
        finally:
            self._held[name] -= 1
            if not self._held[name]:
                del self._held[name]
