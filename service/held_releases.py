"""Releases of `after_response` jobs, written together: one Redis call for every request that ended meanwhile.

A route's `after_response` job is held in Redis before its response goes out (core/holding.py), so it is durable
whatever happens next; releasing it only brings it forward. That second write need not be a round trip of its
own per request: the releases of one short window (`HOLD_RELEASE_WINDOW_MS`) go out as one `ZADD` and one wake,
the way a database commits a group of transactions with one flush. Under load that is one call for many
requests instead of one each; the price is that a released job becomes due up to one window later.

A release that fails is only late: the hold runs out and the queue runs the job anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from core import holding
from service.inflight import InFlight

log = structlog.get_logger("api")


class HeldReleases:
    """Collects held jobs to release and writes them, a window's worth at a time."""

    def __init__(self, pool: ArqRedis, queue_name: str, window_s: float, inflight: InFlight) -> None:
        self.pool = pool
        self.queue_name = queue_name
        self.window_s = window_s
        self.inflight = inflight  # shutdown waits for a window in progress, as for any write
        self._pending: list[holding.Held] = []
        self._writing: asyncio.Task[None] | None = None

    def release(self, held: Sequence[holding.Held]) -> None:
        """Release these jobs within the window; returns at once."""
        if not held:
            return
        self._pending.extend(held)
        if self._writing is None:
            self._writing = asyncio.create_task(self.inflight.run(self._write_after_window()))

    async def flush(self) -> None:
        """Write what is pending now, and wait for a batch being written (at shutdown, and in tests)."""
        await self._write_pending()
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write_after_window(self) -> None:
        # A window opens with the first release and closes once, whatever arrives in it; what arrives while a
        # batch is written opens the next window, so a steady stream of requests is written a window at a time.
        try:
            while self._pending:
                await asyncio.sleep(self.window_s)
                await self._write_pending()
        finally:
            self._writing = None

    async def _write_pending(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await holding.release(self.pool, self.queue_name, batch)
        except (RedisError, OSError) as exc:
            log.warning("jobs.release_failed", jobs=len(batch), error=type(exc).__name__, message=str(exc))
