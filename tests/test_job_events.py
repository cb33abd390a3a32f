"""`GET /v1/jobs/{id}/events` and `GET /v1/events`: Server-Sent Events replayed from Redis and followed live
from the process's event hub. Events are written here the way the scripts write them; tests/test_result_wait.py
runs the real worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis

from core import events
from core.embedded_redis import free_port, start_redis
from core.events import EventName
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
