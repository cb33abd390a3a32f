"""`GET /v1/jobs/{id}/events` and `GET /v1/events`: Server-Sent Events replayed from Redis and followed live
from the process's event hub. Events are written here the way the scripts write them; tests/test_result_wait.py
runs the real worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from core import events, keys
from core.embedded_redis import free_port, start_redis
from core.events import EventName
from service.app import create_app
from service.sse import REPLAY_PAGE
from settings import Settings
from tests.conftest import api_client, make_settings
from tests.support.events import Frame, add_event, frames, parse
from tests.support.keys import ENQUEUE_KEY, ENQUEUER, READ_KEY, READER, bearer
from tests.support.server import serving
from tests.support.waiting import wait_for

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


async def _ids(redis: ArqRedis, job_id: str) -> list[str]:
    return [entry_id.decode() for entry_id, _ in await redis.xrange(events.job_stream(job_id))]


async def _enqueued(client: httpx.AsyncClient) -> str:
    answer = await client.post("/v1/jobs", json=WELCOME)
    assert answer.status_code == 202
    return str(answer.json()["job_id"])


@asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind real uvicorn: httpx's ASGITransport hands out a response only once it has ended."""
    async with serving(settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield http


async def test_job_events_replay_history_in_order_and_end_at_the_terminal_event(client, redis) -> None:
    job_id = await _enqueued(client)
    written = [*await _ids(redis, job_id)]  # the enqueue's own `queued`
    written += [
        await add_event(redis, job_id, "send_welcome_email", "queued", {"scheduled_at": 1}),
        await add_event(redis, job_id, "send_welcome_email", "started", {"try": 1}),
        await add_event(redis, job_id, "send_welcome_email", "progress", {"done": 1, "total": 2, "percent": 50}),
        await add_event(redis, job_id, "send_welcome_email", "complete", {"try": 1}),
    ]
    answer = await client.get(f"/v1/jobs/{job_id}/events")  # returns at all only because the stream ends
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    got = parse(answer.text)
    assert [f.id for f in got] == written
    assert [f.event for f in got] == ["queued", "queued", "started", "progress", "complete"]
    assert got[3].data == {
        "job_id": job_id,
        "function": "send_welcome_email",
        "event": "progress",
        "data": {"done": 1, "total": 2, "percent": 50},
    }


async def test_last_event_id_replays_only_what_followed_it(client, redis) -> None:
    job_id = await _enqueued(client)
    ids = [await add_event(redis, job_id, "send_welcome_email", name) for name in ("queued", "started", "complete")]
    answer = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": ids[0]})
    assert [(f.id, f.event) for f in parse(answer.text)] == [(ids[1], "started"), (ids[2], "complete")]
    after_last = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": ids[2]})
    assert after_last.status_code == 200
    assert parse(after_last.text) == []


async def test_a_requeued_job_stream_goes_on_past_its_old_terminal_event(settings, redis) -> None:
    """Only a terminal event that is the job's last ends the stream: a dead job requeued runs again."""
    async with _served(settings) as http:
        job_id = await _enqueued(http)
        ids = [await add_event(redis, job_id, "echo", name) for name in ("queued", "dead", "requeued", "queued")]
        seen: list[Frame] = []
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            async for frame in frames(response):
                seen.append(frame)
                if frame.id == ids[-1]:
                    await add_event(redis, job_id, "echo", "complete")
    assert [f.event for f in seen] == ["queued", "queued", "dead", "requeued", "queued", "complete"]


async def test_live_events_follow_the_replay_without_gap_or_duplicate(settings, redis) -> None:
    async with _served(settings) as http:
        job_id = await _enqueued(http)
        first = await add_event(redis, job_id, "send_welcome_email", "queued")
        seen: list[Frame] = []
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            async for frame in frames(response):
                seen.append(frame)
                if frame.id == first:  # replayed; what follows comes live through the hub
                    for name in ("started", "progress", "complete"):
                        await add_event(redis, job_id, "send_welcome_email", name, {"try": 1})
        # the loop ended because the server ended the stream after `complete`
    assert [f.event for f in seen] == ["queued", "queued", "started", "progress", "complete"]
    assert len({f.id for f in seen}) == 5


async def test_an_idle_stream_sends_keep_alive_comments(settings, redis) -> None:
    quick = settings.model_copy(update={"sse_keepalive_seconds": 0.05})
    async with _served(quick) as http:
        job_id = await _enqueued(http)
        seen: list[Frame] = []
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            async for frame in frames(response):
                seen.append(frame)
                if sum(f.comment is not None for f in seen) == 3:
                    await add_event(redis, job_id, "send_welcome_email", "aborted")
    assert [f.event for f in seen] == ["queued", None, None, None, "aborted"]
    assert [f.comment for f in seen[1:4]] == ["keep-alive"] * 3


async def test_unknown_job_is_404_and_a_malformed_last_event_id_is_422(client, redis) -> None:
    missing = await client.get("/v1/jobs/nope/events")
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["loc"] == ["path", "job_id"]
    job_id = await _enqueued(client)
    bad = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["header", "last-event-id"]
    feed = await client.get("/v1/events", params={"function": "no_such_function"})
    assert feed.status_code == 422
    assert feed.json()["detail"][0] == {
        "loc": ["query", "function"],
        "msg": "no function named 'no_such_function' is registered",
        "type": "unknown_function",
    }


async def test_a_job_with_events_but_no_records_left_is_replayed_not_404(client, redis) -> None:
    await add_event(redis, "gone", "echo", "queued")
    answer = await client.get("/v1/jobs/gone/events")
    assert answer.status_code == 200
    assert [f.event for f in parse(answer.text)] == ["queued"]


async def test_streams_beyond_the_per_key_cap_are_429_and_a_client_that_leaves_frees_its_slot(settings, redis) -> None:
    capped = settings.model_copy(update={"max_waits_per_key": 1, "sse_keepalive_seconds": 0.05})
    async with _served(capped) as http:
        job_id = await _enqueued(http)
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            second = await http.get("/v1/events")
            assert second.status_code == 429
            assert second.headers["retry-after"] == "1"
            assert second.json()["detail"][0]["type"] == "too_many_waits"
            wait = await http.get(f"/v1/jobs/{job_id}/result", params={"wait": 1})
            assert wait.status_code == 429
        # The client closed its stream: the server notices at its next keep-alive and gives the slot back.

        async def result_wait_status() -> int:
            return (await http.get(f"/v1/jobs/{job_id}/result", params={"wait": 0.01})).status_code

        assert await wait_for(result_wait_status, lambda status: status == 202, timeout=5) == 202


async def test_platform_feed_filters_by_function_and_resumes_from_last_event_id(settings, redis) -> None:
    async with _served(settings) as http:
        before = await add_event(redis, "a1", "echo", "queued")
        missed = await add_event(redis, "b1", "sleep_for", "queued")
        also_missed = await add_event(redis, "a2", "echo", "started")
        seen: list[Frame] = []
        headers = {"Last-Event-ID": before}
        async with http.stream("GET", "/v1/events", params={"function": "echo"}, headers=headers) as response:
            assert response.status_code == 200
            async for frame in frames(response):
                seen.append(frame)
                if frame.id == also_missed:
                    await add_event(redis, "b2", "sleep_for", "complete")
                    live = await add_event(redis, "a2", "echo", "complete")
                if frame.event == "complete":
                    break
        assert missed not in [f.id for f in seen]
        assert [(f.id, f.event) for f in seen] == [(also_missed, "started"), (live, "complete")]
        assert {f.data["function"] for f in seen if f.data} == {"echo"}


async def test_platform_feed_without_last_event_id_starts_now(settings, redis) -> None:
    async with _served(settings) as http:
        await add_event(redis, "old", "echo", "complete")
        seen: list[Frame] = []
        async with http.stream("GET", "/v1/events") as response:
            # Nothing is replayed: the first frame is the event added after the stream opened.
            marker = asyncio.create_task(add_event(redis, "new", "echo", "queued"))
            async for frame in frames(response):
                seen.append(frame)
                if frame.event is not None:
                    break
            await marker
        assert seen[-1].data is not None and seen[-1].data["job_id"] == "new"
        assert EventName(seen[-1].event) is EventName.queued


async def test_a_job_stream_resumed_past_its_last_event_still_ends_with_the_job(settings, redis) -> None:
    """A Last-Event-ID beyond the job's last event (another stream's id, a clock ahead) is taken as that last
    event: what follows is sent and the terminal event ends the stream (it used to be dropped as seen)."""
    async with _served(settings) as http:
        job_id = await _enqueued(http)
        seen: list[Frame] = []
        headers = {"Last-Event-ID": "99999999999999-0"}
        async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
            assert response.status_code == 200
            ended = await add_event(redis, job_id, "send_welcome_email", "complete")
            async with asyncio.timeout(5):
                seen = [frame async for frame in frames(response) if frame.event is not None]
    assert [(f.id, f.event) for f in seen] == [(ended, "complete")]


@pytest.mark.parametrize("last_event_id", ["99999999999999-0", "18446744073709551615-18446744073709551615"])
async def test_the_feed_resumed_past_the_stream_end_follows_what_comes_next(settings, redis, last_event_id) -> None:
    """An id past the platform stream's end (up to the largest id Redis has) resumes at its end: no error
    mid-stream (`(max` is no valid XRANGE start), and later events are not dropped as already seen."""
    async with _served(settings) as http:
        await add_event(redis, "before", "echo", "queued")
        async with http.stream("GET", "/v1/events", headers={"Last-Event-ID": last_event_id}) as response:
            assert response.status_code == 200
            marker = asyncio.create_task(add_event(redis, "after", "echo", "queued"))
            async with asyncio.timeout(5):
                async for frame in frames(response):
                    if frame.event is not None:
                        break
            assert frame.data is not None and frame.data["job_id"] == "after"
            assert frame.id == await marker


async def test_a_job_stream_ends_when_its_job_is_gone_without_a_terminal_event(settings, redis) -> None:
    """A job whose records vanished (a Redis restarted without persistence, a flush) or that a worker built from
    arq's arguments ended (no events) will never publish a terminal event: an idle stream looks at the job at
    each keep-alive and ends once it is no longer pending, instead of holding the client and its slot for ever."""
    quick = settings.model_copy(update={"sse_keepalive_seconds": 0.05})
    async with _served(quick) as http:
        job_id = await _enqueued(http)
        seen: list[Frame] = []
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            async with asyncio.timeout(5):
                async for frame in frames(response):
                    seen.append(frame)
                    if frame.event == "queued":
                        await redis.delete(keys.job(job_id))
                        await redis.zrem(quick.queue_name, job_id)
        assert seen[0].event == "queued" and all(f.comment == "keep-alive" for f in seen[1:])
        ended_unannounced = await _enqueued(http)
        async with http.stream("GET", f"/v1/jobs/{ended_unannounced}/events") as response:
            await redis.set(keys.result(ended_unannounced), b"{}")  # what arq's own worker writes, and no event
            async with asyncio.timeout(5):
                assert [f.event async for f in frames(response) if f.event] == ["queued"]


async def _xrange_calls(redis: ArqRedis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


def _feed_scope(last_event_id: str) -> dict[str, Any]:
    """A browser's `GET /v1/events` resuming after `last_event_id`, from the API's own host, as an ASGI scope."""
    headers = [(b"host", b"127.0.0.1"), (b"last-event-id", last_event_id.encode())]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip


async def _fill_feed(redis: Redis, count: int) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(events.STREAM, {"job_id": f"j{n}", "function": "echo", "event": "queued", "data": "{}"})
        await pipe.execute()


async def test_a_long_feed_replay_is_sent_page_by_page_not_read_whole_first(settings, redis) -> None:
    """A feed resumed from far back (the platform stream keeps 100,000 events) sends each page as it reads it:
    a client that stops reading holds one page in the API's memory, not the whole stream (about 100 MB for
    100,000 events, and the first byte only once all of it was read)."""
    await _fill_feed(redis, 5 * REPLAY_PAGE)
    first_frame, forever = asyncio.Event(), asyncio.Event()

    async def stalled_client(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body", b"").startswith(b"id:"):
            first_frame.set()
            await forever.wait()  # the client reads no further

    async def connected() -> dict[str, Any]:
        await forever.wait()
        return {"type": "http.disconnect"}

    async with LifespanManager(create_app(settings)) as manager:
        before = await _xrange_calls(redis)
        served = asyncio.create_task(manager.app(_feed_scope("0-0"), connected, stalled_client))
        try:
            async with asyncio.timeout(10):
                await first_frame.wait()
            assert await _xrange_calls(redis) - before == 1
        finally:
            served.cancel()
            with suppress(asyncio.CancelledError):
                await served


async def test_event_streams_need_the_read_scope(redis_server, redis) -> None:
    keyed = make_settings(redis_server.url, api_keys=[ENQUEUER, READER])
    async with api_client(keyed) as http:
        answer = await http.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))
        job_id = answer.json()["job_id"]
        await add_event(redis, job_id, "send_welcome_email", "complete")
        for path in (f"/v1/jobs/{job_id}/events", "/v1/events"):
            assert (await http.get(path)).status_code == 401
            assert (await http.get(path, headers=bearer(ENQUEUE_KEY))).status_code == 403
        allowed = await http.get(f"/v1/jobs/{job_id}/events", headers=bearer(READ_KEY))
        assert [f.event for f in parse(allowed.text)] == ["queued", "complete"]


async def test_a_feed_whose_redis_goes_away_mid_replay_ends_cleanly(tmp_path: Path) -> None:
    """Redis lost while a stream is being sent (here between two replay pages) ends the stream as a stream
    ends, for the client to resume with Last-Event-ID: not an exception out of a response already started
    (logged as api.unexpected_error, the connection cut without its last chunk)."""
    port = free_port()
    server = start_redis(port, tmp_path / "redis", appendonly=False)
    settings = make_settings(server.url)
    redis = Redis.from_url(server.url)
    sent: list[dict[str, Any]] = []
    first_frame, go_on, forever = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def client(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not first_frame.is_set():
            first_frame.set()
            await go_on.wait()

    async def connected() -> dict[str, Any]:
        await forever.wait()
        return {"type": "http.disconnect"}

    try:
        await _fill_feed(redis, 2 * REPLAY_PAGE)
        async with LifespanManager(create_app(settings)) as manager:
            served = asyncio.create_task(manager.app(_feed_scope("0-0"), connected, client))
            async with asyncio.timeout(10):
                await first_frame.wait()
                server.stop()
                go_on.set()
                await served  # returns: the stream ended
        assert sent[0]["status"] == 200
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    finally:
        await redis.aclose()
        server.stop()


async def test_a_stream_open_across_a_redis_restart_gets_what_was_written_after_it(tmp_path: Path) -> None:
    """The API's hub reconnects by itself and resumes after the last event it saw: the open stream carries on."""
    port = free_port()
    server = start_redis(port, tmp_path / "redis", appendonly=True)
    settings = make_settings(server.url)
    redis = Redis.from_url(server.url)
    try:
        async with _served(settings) as http:
            job_id = await _enqueued(http)
            seen: list[Frame] = []
            async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
                async for frame in frames(response):
                    seen.append(frame)
                    if len(seen) == 1:  # the enqueue's `queued`: now restart Redis under the open stream
                        server.stop()
                        server = start_redis(port, tmp_path / "redis", appendonly=True)
                        await add_event(redis, job_id, "send_welcome_email", "started")
                        await add_event(redis, job_id, "send_welcome_email", "complete")
        assert [f.event for f in seen] == ["queued", "started", "complete"]
    finally:
        await redis.aclose()
        server.stop()
