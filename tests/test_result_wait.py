"""Results pushed, not polled: `?wait=N` answers as soon as the job's terminal event reaches the process's event
hub, with the real worker writing the events; any API replica sees any worker's events; a pool with no free
connection says so instead of blaming Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from core.redis import PoolExhausted
from service.app import create_app
from service.event_hub import EventHub
from settings import Settings
from tests.support.events import parse
from tests.support.server import serving
from tests.support.waiting import wait_for


@asynccontextmanager
async def live_api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """The app with its lifespan, and the lifespan's state (its pool and event hub) for the test to look at."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test", timeout=30) as client:
            yield client, dict(state)


async def _enqueue(client: httpx.AsyncClient, function: str, **kwargs: Any) -> str:
    answer = await client.post("/v1/jobs", json={"function": function, "kwargs": kwargs})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


async def _subscribers(hub: EventHub) -> int:
    return hub.subscribers


async def test_a_wait_answers_within_milliseconds_of_the_job_ending(settings, redis, running_worker) -> None:
    async with live_api(settings) as (client, _):
        # Polling (10 ms doubling to 200 ms) would look at 0.31 s and next at 0.51 s: a job ending at about
        # 0.35 s would be seen some 150 ms late.
        job_id = await _enqueue(client, "sleep_for", seconds=0.35)
        answer = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})
        answered_at = time.time()
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "complete" and body["result"] == 0.35
        ended_at = datetime.fromisoformat(body["finished_at"]).timestamp()
        lag = answered_at - ended_at
        assert lag < 0.05, f"answered {lag * 1000:.1f} ms after the job ended"


async def test_a_wait_reads_the_job_twice_however_long_it_waits(settings, redis, running_worker) -> None:
    async with live_api(settings) as (client, state):
        job_id = await _enqueue(client, "sleep_for", seconds=1.0)
        before = await redis.info("commandstats")
        answer = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})
        after = await redis.info("commandstats")
        assert answer.json()["status"] == "complete"
        # read_job is one pipeline of seven commands, with one LRANGE; twice, whatever the wait's length.
        lranges = after["cmdstat_lrange"]["calls"] - before["cmdstat_lrange"]["calls"]
        assert lranges == 2
        assert state["events"].subscribers == 0


async def test_two_api_processes_both_see_a_workers_events(settings, redis, run_burst_worker) -> None:
    async with live_api(settings) as (first, first_state), live_api(settings) as (second, second_state):
        job_id = await _enqueue(first, "echo", value={"n": 1})
        waits = [
            asyncio.create_task(first.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})),
            asyncio.create_task(second.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})),
            asyncio.create_task(first.get(f"/v1/jobs/{job_id}/events")),
            asyncio.create_task(second.get(f"/v1/jobs/{job_id}/events")),
        ]
        # Every request is subscribed before the worker runs the job, so what they get comes live.
        await wait_for(lambda: _subscribers(first_state["events"]), lambda n: n == 2)
        await wait_for(lambda: _subscribers(second_state["events"]), lambda n: n == 2)
        await run_burst_worker()
        results, results_too, stream, stream_too = await asyncio.gather(*waits)
    for answer in (results, results_too):
        assert answer.status_code == 200
        assert answer.json()["result"] == {"n": 1}
    for answer in (stream, stream_too):
        frames = parse(answer.text)
        assert [f.event for f in frames] == ["queued", "started", "complete"]
        assert frames[-1].data == {"job_id": job_id, "function": "echo", "event": "complete", "data": {"try": 1}}
    assert [f.id for f in parse(stream.text)] == [f.id for f in parse(stream_too.text)]


async def test_a_failed_job_ends_its_wait_and_its_stream(settings, redis, run_burst_worker) -> None:
    async with live_api(settings) as (client, state):
        job_id = await _enqueue(client, "fail_always", message="boom")
        wait = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10}))
        stream = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/events"))
        await wait_for(lambda: _subscribers(state["events"]), lambda n: n == 2)
        await run_burst_worker()
        assert (await wait).json()["status"] == "failed"
        frames = parse((await stream).text)
    assert frames[-1].event == "dead"
    assert frames[-1].data is not None and frames[-1].data["data"]["error"]["message"] == "boom"


async def test_a_wait_on_a_job_aborted_while_running_answers_once_it_stopped(settings, redis, running_worker) -> None:
    async with live_api(settings) as (client, _):
        job_id = await _enqueue(client, "sleep_for", seconds=30)

        async def status() -> str:
            return str((await client.get(f"/v1/jobs/{job_id}")).json()["status"])

        await wait_for(status, lambda s: s == "in_progress")
        wait = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10}))
        aborted = await client.post(f"/v1/jobs/{job_id}/abort")
        assert aborted.status_code in (200, 202)
        answer = await wait
        assert answer.status_code == 200
        assert answer.json()["status"] == "aborted"


async def test_an_exhausted_pool_is_503_pool_exhausted_not_redis_unavailable(settings, redis) -> None:
    small = settings.model_copy(update={"redis_max_connections": 2, "redis_timeout_seconds": 0.2})
    async with live_api(small) as (client, state):
        pool: ArqRedis = state["pool"]
        held = [await pool.connection_pool.get_connection("PING") for _ in range(2)]
        try:
            with pytest.raises(PoolExhausted):
                await pool.ping()
            answer = await client.get("/v1/jobs/anything")
            assert answer.status_code == 503
            assert answer.headers["retry-after"].isdigit()
            detail = answer.json()["detail"][0]
            assert detail["type"] == "pool_exhausted"
            assert detail["msg"].startswith("too many concurrent requests")
            assert "Redis is unavailable" not in detail["msg"]
        finally:
            for connection in held:
                await pool.connection_pool.release(connection)
        assert (await client.get("/v1/jobs/anything")).status_code == 404


async def test_a_wait_whose_client_leaves_gives_its_slot_back_at_once(settings, redis) -> None:
    capped = settings.model_copy(update={"max_waits_per_key": 1})
    async with serving(capped) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        job_id = await _enqueue(http, "echo", value=1)  # no worker: it never finishes
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /v1/jobs/{job_id}/result?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()

        async def another_wait() -> int:
            return (await http.get(f"/v1/jobs/{job_id}/result", params={"wait": 0.01})).status_code

        assert await wait_for(another_wait, lambda status: status == 429) == 429  # the raw client holds the slot
        writer.close()
        # Freed when the client leaves, not 30 s later when the wait would have ended.
        assert await wait_for(another_wait, lambda status: status == 202, timeout=5) == 202
