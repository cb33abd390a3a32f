"""The platform's writes still running in this process, counted so shutdown waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import TypeVar

T = TypeVar("T")


class InFlight:
    """Counts the platform's writes still running in this process, so shutdown waits for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, operation: Awaitable[T]) -> T:
        self.begin()
        try:
            return await operation
        finally:
            self.end()

    def begin(self) -> None:
        """One more write in flight (`run` without its coroutine frame, for the enqueue path: every await of a
        Redis round trip resumes through each frame between it and the route)."""
        self._count += 1
        if self._count == 1:
            self._idle.clear()

    def end(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    def spawn(self, operation: Coroutine[object, object, object]) -> None:
        """Run `operation` in the background, counted like `run` (the task is kept until it ends)."""
        task: asyncio.Task[object] = asyncio.create_task(self.run(operation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False when `timeout_s` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    @property
    def count(self) -> int:
        return self._count
