"""Deadlines for reading request bodies: one timer per process, ticking only while a body is being read.

A timer per request (`loop.call_later`, or `asyncio.timeout()`) cost more than the rest of service/body.py's
reader on every request with a body, though almost every body has arrived by the time it is read. Here a
read costs a dict entry; a tick every quarter of the timeout (at most a second) cancels the reads past their
deadline, so a slow body is answered within 1.25 times the timeout.
"""

from __future__ import annotations

import asyncio

MAX_TICK_S = 1.0
MIN_TICK_S = 0.01


class ReadDeadlines:
    """`begin` before reading, `end` after, in one task; the read's `await`s raise CancelledError once its
    deadline passed, and `expired` then says so (the caller answers 408 and uncancels its task)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick_s = min(MAX_TICK_S, max(MIN_TICK_S, timeout_s / 4))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reads: dict[asyncio.Task[object], float] = {}  # by deadline: inserted in the order they fall due
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, task: asyncio.Task[object]) -> None:
        loop = task.get_loop()
        if loop is not self._loop:  # a new event loop (tests run several): the old one's reads are gone
            self._loop, self._reads, self._expired, self._timer = loop, {}, set(), None
        self._reads[task] = loop.time() + self.timeout_s
        if self._timer is None:
            self._timer = loop.call_later(self.tick_s, self._sweep)

    def end(self, task: asyncio.Task[object]) -> None:
        self._reads.pop(task, None)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """Whether the deadline cancelled `task` (once: the answer is the caller's to give)."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        while self._reads:
            task, deadline = next(iter(self._reads.items()))
            if deadline > now:
                break
            del self._reads[task]
            if not task.done():
                self._expired.add(task)
                task.cancel()
        self._timer = self._loop.call_later(self.tick_s, self._sweep) if self._reads else None
