"""Per-key limits: a request rate shared by every API process through Redis, and a cap on the result
waits and event streams one key holds open.

The rate is a fixed one-minute window per key. Each process leases a share of the window from Redis
(a Lua script grants at most what is left of the limit) and spends it locally, so Redis is asked once per
lease instead of once per request, and all processes together never admit more than the limit. A lease is
1/LEASES_PER_WINDOW of the limit: what a process leased and did not use is lost for that window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis
from redis.commands.core import AsyncScript

from core import keys

WINDOW_S = 60
LEASES_PER_WINDOW = 200
WAIT_RETRY_AFTER_S = 1

_LEASE_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
if used == 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return grant
"""


@dataclass
class _Window:
    index: int
    tokens: int = 0  # leased from Redis, not yet spent
    exhausted: bool = False  # Redis granted nothing: the limit is reached for this window
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """Admit or refuse one request of a key; refusals say how many seconds until the window turns.

    A Redis error while leasing propagates: the caller answers 503, as the request itself would."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.lease = max(1, per_minute // LEASES_PER_WINDOW)
        self._windows: dict[str, _Window] = {}
        self._script: AsyncScript | None = None

    def take(self, name: str) -> bool:
        """Spend one of the tokens this process holds for `name` in the current window; False when it holds
        none (or the window turned): then `admit` decides, leasing from Redis if the limit allows."""
        if self.per_minute <= 0:
            return True
        window = self._windows.get(name)
        if window is None or window.tokens <= 0 or window.index != int(time.time() // WINDOW_S):
            return False
        window.tokens -= 1
        return True

    async def admit(self, name: str, scope: MutableMapping[str, Any]) -> int | None:
        """None to admit, else the Retry-After in seconds."""
        if self.per_minute <= 0:
            return None
        now = time.time()
        index = int(now // WINDOW_S)
        window = self._windows.get(name)
        if window is None or window.index != index:
            window = self._windows[name] = _Window(index)
        if window.tokens <= 0 and not window.exhausted:
            pool: ArqRedis | None = scope.get("state", {}).get("pool")
            if pool is None:  # no lifespan (never in production): nothing to share counts through
                return None
            async with window.lock:  # one lease at a time; the others wait for it and spend from it
                if window.tokens <= 0 and not window.exhausted:
                    granted = await self._lease(pool, name, index)
                    window.tokens += granted
                    window.exhausted = granted == 0
        if window.tokens <= 0:
            return max(1, math.ceil((index + 1) * WINDOW_S - now))
        window.tokens -= 1
        return None

    async def _lease(self, pool: ArqRedis, name: str, index: int) -> int:
        if self._script is None:
            self._script = pool.register_script(_LEASE_SCRIPT)
        args = [self.lease, self.per_minute, WINDOW_S * 2]
        return int(await self._script(keys=[keys.rate(name, index)], args=args))


class TooManyWaits(Exception):
    """A key already holds its share of open result waits or event streams."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this key already holds {limit} open result waits or event streams; retry shortly")
        self.limit = limit


class WaitSlots:
    """Open result waits and event streams per key, in this process."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._held: Counter[str] = Counter()

    def take(self, name: str) -> None:
        """Take one of the key's slots (TooManyWaits when none is left); `give_back` frees it."""
        if self._held[name] >= self.per_key:
            raise TooManyWaits(self.per_key)
        self._held[name] += 1

    def give_back(self, name: str) -> None:
        self._held[name] -= 1
        if self._held[name] <= 0:
            del self._held[name]

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        self.take(name)
        try:
            yield
        finally:
            self.give_back(name)
