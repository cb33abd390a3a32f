"""One follower of the platform-wide event stream per API process, fanning events out to its result waits and
SSE streams in memory: a thousand waiters cost one blocking `XREAD`, not a thousand polls (issue 8).

The hub reads `platform:events` (core/events.py) on a connection of its own, never one of the request pool, so
waiters can neither starve enqueues nor be starved by them. After a Redis outage it reconnects with capped
backoff and resumes after the last id it saw, so subscribers miss nothing the stream still holds.

Nobody subscribed, nobody needs the events: after `PARK_AFTER_S` without a subscriber the hub stops reading (an
API process that only enqueues would otherwise read back every event it and the workers write, one `XREAD` per
burst). The next subscriber pins the stream's end again before it is handed its subscription, exactly as at
start, so what it reads after subscribing is covered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Final

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from core import events, keys
from core.events import Event
from core.redis import KEEPALIVE_PROBES, connection_options
from settings import Settings

log = structlog.get_logger("api")
BLOCK_MS = 5_000  # one empty XREAD every 5 s while nothing happens
READ_COUNT = 500
BACKOFF_START_S, BACKOFF_MAX_S = 0.05, 2.0
STOP_WAIT_S = 0.5
SWEEP_S = 1.0  # how often the results of long waits are checked for (see `_sweep`)
PARK_AFTER_S = 1.0  # stop reading after this long without a subscriber
SUBSCRIBER_BUFFER = 10_000  # events a slow subscriber may fall behind before it is cut off


class Gap:
    """Told to subscribers when the hub cannot vouch that it delivered every event since they subscribed
    (it started following the stream after them): a waiter re-reads, a stream replays."""


GAP: Final = Gap()


@dataclass(eq=False)
class Subscription:
    """What one waiter or stream receives: events of its job (or function, or all) in stream order."""

    job_id: str | None = None
    function: str | None = None
    wants_result: bool = False  # a result wait: told (by a Gap) when its job's result appears without an event
    since: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    queue: asyncio.Queue[Event | Gap] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BUFFER))
    overflowed: bool = False

    def offer(self, item: Event | Gap) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True  # its reader ends (an SSE client resumes with Last-Event-ID)

    async def next(self) -> Event | Gap:
        return await self.queue.get()


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (`<ms>-<seq>`) as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventHub:
    """Follows `platform:events` from when it starts; `subscribe` costs no Redis command."""

    def __init__(self, settings: Settings, pool: Redis) -> None:
        self._pool = pool  # the request pool, for the sweep's one command a second
        self._redis: Redis = Redis.from_url(
            settings.redis_url,
            max_connections=1,
            socket_connect_timeout=settings.redis_timeout_seconds,
            socket_timeout=BLOCK_MS / 1000 + settings.redis_timeout_seconds,
            socket_keepalive=True,
            socket_keepalive_options=KEEPALIVE_PROBES,
            retry=Retry(NoBackoff(), 0),  # the loop below backs off itself
            **connection_options(settings),
        )
        self._by_job: dict[str, set[Subscription]] = {}
        self._by_function: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._count = 0  # subscriptions open
        self._idle_since = 0.0  # loop time the last subscription closed
        self._parked = False  # not reading: nobody subscribed for PARK_AFTER_S
        self._unparked = asyncio.Event()
        self._unparking = asyncio.Lock()
        self._cursor: str | None = None  # the last entry id seen; None until first connected
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()  # set once connected, cleared when a read fails
        self.failures = 0  # failed attempts to reach Redis, ever

    @property
    def cursor(self) -> str | None:
        return self._cursor

    @property
    def subscribers(self) -> int:
        return self._count

    @property
    def parked(self) -> bool:
        return self._parked

    async def start(self) -> None:
        """Pin the starting point now when Redis answers (so a wait that starts right after misses nothing),
        then follow the stream in the background."""
        with suppress(RedisError, OSError):
            self._cursor = await self._stream_end()
        self._idle_since = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._follow(), name="event-hub")
        self._sweeper = asyncio.create_task(self._sweep(), name="event-hub-sweep")

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await self._sweeper
        if self._task is not None:
            self._task.cancel()
            # After a reconnect, redis-py on Python 3.11 can lose the cancel of a blocking read (its read timeout
            # and the cancel race); closing the connection under it ends the read either way.
            done, _ = await asyncio.wait({self._task}, timeout=STOP_WAIT_S)
            if not done:
                await self._redis.connection_pool.disconnect(inuse_connections=True)
            with suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    @asynccontextmanager
    async def subscribe(
        self, *, job_id: str | None = None, function: str | None = None, wants_result: bool = False
    ) -> AsyncIterator[Subscription]:
        """Events of one job, of one function, or (neither given) all of them, until the block exits."""
        subscription = Subscription(job_id, function, wants_result and job_id is not None)
        if job_id is not None:
            group = self._by_job.setdefault(job_id, set())
        elif function is not None:
            group = self._by_function.setdefault(function, set())
        else:
            group = self._everything
        group.add(subscription)
        self._count += 1
        try:
            if self._parked:
                await self._unpark()
            yield subscription
        finally:
            group.discard(subscription)
            self._count -= 1
            if not self._count:
                self._idle_since = asyncio.get_running_loop().time()
            if not group and group is not self._everything:
                if job_id is not None:
                    self._by_job.pop(job_id, None)
                elif function is not None:
                    self._by_function.pop(function, None)

    async def _unpark(self) -> None:
        """Pin the stream's end and read on from there (the events the hub skipped had nobody to go to)."""
        async with self._unparking:
            if not self._parked:
                return
            try:
                self._cursor = await self._stream_end()
            except (RedisError, OSError):
                self._cursor = None  # the reading loop pins it once Redis answers, and tells subscribers of the gap
            self._parked = False
            self._unparked.set()

    async def _park_while_unwanted(self) -> None:
        loop = asyncio.get_running_loop()
        if self._count or loop.time() - self._idle_since < PARK_AFTER_S:
            return
        self._parked = True
        self._unparked.clear()
        await self._unparked.wait()

    async def _stream_end(self) -> str:
        last = await self._redis.xrevrange(events.STREAM, count=1)
        return str(last[0][0].decode()) if last else "0-0"

    async def _follow(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            await self._park_while_unwanted()
            try:
                if not self.connected.is_set():
                    await self._redis.ping()
                    if self.failures:
                        log.info("events.hub_reconnected", resumed_after=self._cursor)
                    self.connected.set()
                    backoff = BACKOFF_START_S
                if self._cursor is None:  # Redis was down at start: begin at its end, and say so
                    self._cursor = await self._stream_end()
                    self._publish(GAP)
                reply = await self._redis.xread({events.STREAM: self._cursor}, count=READ_COUNT, block=BLOCK_MS)
            except (RedisError, OSError) as exc:
                if self._stopping:
                    return
                if self.connected.is_set() or not self.failures:
                    log.warning("events.hub_disconnected", error=type(exc).__name__, message=str(exc))
                self.connected.clear()
                self.failures += 1
                await asyncio.sleep(backoff)  # capped exponential: no busy loop while Redis is away
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    self._cursor = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    event = events.parse(entry_id, fields)
                    if event is not None:
                        self._publish(event)

    async def _sweep(self) -> None:
        """A worker built from arq's arguments alone (not `worker.WorkerSettings`) publishes no events: once a
        second, one `EXISTS` over the result keys of every job waited for longer than that tells whether any of
        them ended unannounced (almost never: a job that publishes its end is no longer waited for), and only
        then are they looked at one by one and their waiters woken."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            now = loop.time()
            waited = [
                job_id
                for job_id, group in self._by_job.items()
                if any(s.wants_result and now - s.since >= SWEEP_S for s in group)
            ]
            if not waited:
                continue
            names = [keys.result(job_id) for job_id in waited]
            try:
                if not await self._pool.exists(*names):
                    continue
                async with self._pool.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.exists(name)
                    found = await pipe.execute()
            except (RedisError, OSError):
                continue  # Redis is away: the waits find out by themselves
            for job_id, ended in zip(waited, found, strict=True):
                if ended:
                    for subscription in [*self._by_job.get(job_id, ())]:
                        if subscription.wants_result:
                            subscription.offer(GAP)

    def _publish(self, item: Event | Gap) -> None:
        if isinstance(item, Gap):
            targets: list[Subscription] = [*self._everything]
            for group in (*self._by_job.values(), *self._by_function.values()):
                targets.extend(group)
        else:
            targets = [*self._everything, *self._by_job.get(item.job_id, ()), *self._by_function.get(item.function, ())]
        for subscription in targets:
            subscription.offer(item)
