"""The event hub: one blocking reader of the platform-wide stream per API process, fanning events out in memory;
it rides out a Redis restart and resumes where it stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from core import keys
from core.embedded_redis import free_port, start_redis
from core.events import Event, EventName
from core.redis import open_api_pool
from service.event_hub import EventHub, Gap, Subscription
from settings import Settings
from tests.conftest import make_settings
from tests.support.events import add_event
from tests.support.waiting import wait_for


@asynccontextmanager
async def running_hub(settings: Settings) -> AsyncIterator[EventHub]:
    pool = open_api_pool(settings)
    hub = EventHub(settings, pool)
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
        await pool.aclose()


async def _next_event(subscription: Subscription, timeout: float = 5) -> Event:
    async with asyncio.timeout(timeout):
        item = await subscription.next()
    assert not isinstance(item, Gap)
    return item


async def _commands(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_commands_processed"])


async def test_events_reach_subscribers_of_their_job_their_function_and_everything(settings, redis) -> None:
    async with running_hub(settings) as hub, AsyncExitStack() as stack:
        of_job = await stack.enter_async_context(hub.subscribe(job_id="j1"))
        other_job = await stack.enter_async_context(hub.subscribe(job_id="j2"))
        of_function = await stack.enter_async_context(hub.subscribe(function="echo"))
        everything = await stack.enter_async_context(hub.subscribe())
        first = await add_event(redis, "j1", "echo", "started", {"try": 1})
        second = await add_event(redis, "j2", "sleep_for", "complete")
        got = await _next_event(of_job)
        assert (got.id, got.job_id, got.event, got.data) == (first, "j1", EventName.started, {"try": 1})
        assert (await _next_event(other_job)).id == second
        assert (await _next_event(of_function)).id == first
        assert [(await _next_event(everything)).id for _ in range(2)] == [first, second]
        assert of_job.queue.empty() and of_function.queue.empty()
    assert hub.subscribers == 0


async def test_a_thousand_subscribers_cost_no_redis_command(settings, redis) -> None:
    async with running_hub(settings) as hub, AsyncExitStack() as stack:
        await wait_for(lambda: _connected(hub), bool)
        before = await _commands(redis)
        subscriptions = [await stack.enter_async_context(hub.subscribe(job_id="busy")) for _ in range(1000)]
        subscribed = await _commands(redis)
        entry = await add_event(redis, "busy", "echo", "complete")
        assert [(await _next_event(s)).id for s in subscriptions] == [entry] * 1000
        # INFO itself is one command each time; the two XADDs are ours; the hub may have read once.
        assert subscribed - before <= 2
        assert hub.subscribers == 1000


async def _connected(hub: EventHub) -> bool:
    return hub.connected.is_set()


async def _failures(hub: EventHub) -> int:
    return hub.failures


async def test_the_hub_rides_out_a_redis_restart_backs_off_and_resumes_after_the_last_id(tmp_path: Path) -> None:
    port = free_port()
    server = start_redis(port, tmp_path / "redis", appendonly=True)
    settings = make_settings(server.url)
    redis = Redis.from_url(server.url)
    try:
        async with running_hub(settings) as hub, hub.subscribe(job_id="j") as subscription:
            before = await add_event(redis, "j", "echo", "started")
            assert (await _next_event(subscription)).id == before
            server.stop()
            await wait_for(lambda: _failures(hub), lambda n: n >= 1)
            down_at = time.monotonic()
            await wait_for(lambda: _failures(hub), lambda n: n >= 5, timeout=10)
            # Backoff: 4 more tries took at least 0.05 + 0.1 + 0.2 + 0.4 s (a busy loop would take microseconds).
            assert time.monotonic() - down_at >= 0.7
            assert not hub.connected.is_set()
            assert hub.cursor == before

            server = start_redis(port, tmp_path / "redis", appendonly=True)
            after = await add_event(redis, "j", "echo", "complete")
            got = await _next_event(subscription, timeout=10)
            assert (got.id, got.event) == (after, EventName.complete)
            assert hub.connected.is_set()
    finally:
        await redis.aclose()
        server.stop()


async def test_a_hub_started_while_redis_is_down_follows_it_once_it_is_up(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(f"redis://127.0.0.1:{port}/0")
    async with running_hub(settings) as hub, hub.subscribe(job_id="j") as subscription:
        assert hub.cursor is None
        server = start_redis(port, tmp_path / "redis", appendonly=False)
        redis = Redis.from_url(server.url)
        try:
            # It starts at the stream's end when it connects, and tells its subscribers it may have missed some.
            async with asyncio.timeout(10):
                assert isinstance(await subscription.next(), Gap)
            entry = await add_event(redis, "j", "echo", "queued")
            assert (await _next_event(subscription)).id == entry
        finally:
            await redis.aclose()
            server.stop()


async def test_a_result_written_without_an_event_wakes_its_waiters_for_one_command_a_second(settings, redis) -> None:
    """A worker built from arq's arguments alone publishes no events: the hub's sweep notices the result."""
    async with running_hub(settings) as hub, AsyncExitStack() as stack:
        waiter = await stack.enter_async_context(hub.subscribe(job_id="plain", wants_result=True))
        others = [
            await stack.enter_async_context(hub.subscribe(job_id=f"idle{n}", wants_result=True)) for n in range(500)
        ]
        stream = await stack.enter_async_context(hub.subscribe(job_id="plain"))
        before = await _commands(redis)
        await asyncio.sleep(3.5)  # a measuring window, idle on purpose: nothing has a result yet
        assert waiter.queue.empty()
        idle = await _commands(redis) - before - 1
        assert idle <= 4 + 3  # one EXISTS a second for 501 waits (plus the hub's own XREAD, at most one here)
        await redis.set(keys.result("plain"), b"{}")
        async with asyncio.timeout(5):
            assert isinstance(await waiter.next(), Gap)
        assert stream.queue.empty() and all(o.queue.empty() for o in others)


async def test_with_nobody_subscribed_the_hub_stops_reading_and_the_next_subscriber_misses_nothing(
    settings, redis, monkeypatch
) -> None:
    monkeypatch.setattr("service.event_hub.PARK_AFTER_S", 0.05)
    async with running_hub(settings) as hub:
        await add_event(redis, "before", "echo", "queued")  # the hub reads once more, then finds nobody
        await wait_for(lambda: _parked(hub), bool)
        reads = (await redis.info("commandstats")).get("cmdstat_xread", {}).get("calls", 0)
        for n in range(20):  # an API that only enqueues: its events are read back by nobody
            await add_event(redis, f"unwatched{n}", "echo", "queued")
        assert (await redis.info("commandstats")).get("cmdstat_xread", {}).get("calls", 0) == reads
        async with hub.subscribe(job_id="watched") as subscription:
            assert not hub.parked
            entry = await add_event(redis, "watched", "echo", "complete")
            got = await _next_event(subscription)
            assert (got.id, got.job_id) == (entry, "watched")  # not one of the twenty it skipped
            assert subscription.queue.empty()


async def _parked(hub: EventHub) -> bool:
    return hub.parked
