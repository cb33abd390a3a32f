"""Server-Sent Events out of the event streams: replay what Redis kept (all of it, or after `Last-Event-ID`),
then follow the hub, with no gap between the two and no duplicate (subscribed before the replay, deduplicated
by entry id), and a keep-alive comment while nothing happens.

A stream holds a per-key wait slot and a hub subscription for exactly as long as its response runs: both are
released by the response itself, whether the stream ended, the client left, or the server stopped."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack

from arq.connections import ArqRedis
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from core import events
from core.events import Event
from service.event_hub import Gap, Subscription, entry_key

KEEPALIVE = b": keep-alive\n\n"
REPLAY_PAGE = 500
LAST_EVENT_ID_LOC = ("header", "last-event-id")
_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering either


def valid_entry_id(value: str) -> bool:
    return _ENTRY_ID.fullmatch(value) is not None


def frame(event: Event) -> bytes:
    """One SSE event: `id:` the stream entry id, `event:` its name, `data:` the entry as one line of JSON."""
    payload = {"job_id": event.job_id, "function": event.function, "event": event.event.value, "data": event.data}
    data = json.dumps(payload, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.event.value}\ndata: {data}\n\n".encode()


async def read_range(
    pool: ArqRedis, stream: str, after: str | None, function: str | None = None, page: int | None = None
) -> list[Event]:
    """The stream's events after `after` (all when None), of `function` when given; `page` entries at a time
    (one read of everything when None: a job's own stream is bounded)."""
    found: list[Event] = []
    start = "-" if after is None else f"({after}"
    while True:
        entries = await pool.xrange(stream, min=start, max="+", count=page)
        for entry_id, fields in entries:
            event = events.parse(entry_id, fields)
            if event is not None and (function is None or event.function == function):
                found.append(event)
        if page is None or len(entries) < page:
            return found
        last = entries[-1][0]
        start = f"({last.decode() if isinstance(last, bytes) else last}"


async def stream_end(pool: ArqRedis) -> str:
    """The id of the platform-wide stream's last entry (`0-0` while it is empty)."""
    last = await pool.xrevrange(events.STREAM, count=1)
    if not last:
        return "0-0"
    entry_id = last[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


class EventStream(StreamingResponse):
    """A `text/event-stream` response that closes `resources` (the slot, the subscription) when it ends."""

    def __init__(self, frames: AsyncIterator[bytes], resources: AsyncExitStack) -> None:
        super().__init__(frames, media_type="text/event-stream", headers=HEADERS)
        self._resources = resources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._resources.aclose()


class Follower:
    """Frames of one subscription after an id: `emit` drops what was already sent."""

    def __init__(self, subscription: Subscription, last_id: str | None, keepalive_s: float) -> None:
        self.subscription = subscription
        self.last = entry_key(last_id) if last_id else None
        self.keepalive_s = keepalive_s

    def fresh(self, event: Event) -> bool:
        key = entry_key(event.id)
        if self.last is not None and key <= self.last:
            return False
        self.last = key
        return True

    def emit(self, found: Iterable[Event]) -> list[Event]:
        return [event for event in found if self.fresh(event)]

    @property
    def last_id(self) -> str | None:
        return f"{self.last[0]}-{self.last[1]}" if self.last else None

    async def next(self) -> Event | Gap | None:
        """The next item, or None when the keep-alive is due."""
        try:
            async with asyncio.timeout(self.keepalive_s):
                return await self.subscription.next()
        except TimeoutError:
            return None
