"""The platform inside a user's own app: mounted router and composed lifespan, and the route handle's three
timing modes (now, on success, after the response), held jobs that are never released, and shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from core import holding
from core.embedded_redis import free_port
from core.registry import Registry
from core.status import JobState, read_job
from core.worker import PlatformWorker
from service.handle import InFlight, Timing
from service.held_releases import HeldReleases
from settings import Settings
from tests.conftest import make_settings
from tests.support import embed_app

RunWorker = Callable[..., Awaitable[PlatformWorker]]


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        # An ALLOWED_HOSTS name: the platform's routes check Host inside any app (tests/test_embed_guard.py).
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            yield client


@pytest.fixture
async def user_app(settings: Settings, registry: Registry, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(embed_app.build(settings, registry)) as client:
        yield client


async def status_of(redis: ArqRedis, job_id: str) -> JobState | None:
    record = await read_job(redis, "arq:queue", job_id)
    return None if record is None else record.status


async def test_mounted_platform_serves_its_routes_next_to_the_apps_own(user_app: httpx.AsyncClient) -> None:
    functions = await user_app.get("/v1/functions")
    assert functions.status_code == 200
    assert "echo" in {f["name"] for f in functions.json()}
    response = await user_app.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}})
    assert response.status_code == 202
    mine = await user_app.post("/echo")
    assert mine.status_code == 200
    assert mine.json()["greeting"] == "hello"  # the app's own lifespan state is kept beside the platform's


async def test_mounted_router_answers_platform_errors_without_the_apps_handlers(user_app: httpx.AsyncClient) -> None:
    unknown = await user_app.post("/v1/jobs", json={"function": "nope", "kwargs": {}})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "function"]
    await user_app.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}, "job_id": "dup"})
    duplicate = await user_app.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}, "job_id": "dup"})
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["detail"][0]["msg"]


async def test_now_is_written_when_called_even_if_the_route_fails(
    user_app: httpx.AsyncClient, redis: ArqRedis, run_burst_worker: RunWorker
) -> None:
    response = await user_app.post("/echo", params={"timing": "now", "fail": True, "job_id": "now-1"})
    assert response.status_code == 400
    assert await status_of(redis, "now-1") == JobState.queued
    await run_burst_worker()
    assert await status_of(redis, "now-1") == JobState.complete


async def test_on_success_is_written_after_the_route_returns_and_before_the_response(
    user_app: httpx.AsyncClient, redis: ArqRedis, run_burst_worker: RunWorker
) -> None:
    response = await user_app.post("/echo", params={"timing": "on_success", "job_id": "ok-1", "value": "v"})
    assert response.status_code == 200
    assert response.json()["job_id"] == "ok-1"
    assert await status_of(redis, "ok-1") == JobState.queued
    await run_burst_worker()
    record = await read_job(redis, "arq:queue", "ok-1")
    assert record is not None and record.result == "v"


async def test_on_success_writes_nothing_when_the_route_raises(user_app: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await user_app.post("/echo", params={"timing": "on_success", "fail": True, "job_id": "ok-2"})
    assert response.status_code == 400
    assert await status_of(redis, "ok-2") is None
    assert await redis.zcard("arq:queue") == 0


async def test_after_response_is_held_in_redis_then_released_once_sent(
    settings: Settings, registry: Registry, redis: ArqRedis, run_burst_worker: RunWorker
) -> None:
    seen_in_route: dict[str, Any] = {}
    app = embed_app.build(settings, registry)

    @app.post("/probe")
    async def probe(jobs: embed_app.JobsDep) -> dict[str, str]:
        job_id = await jobs.after_response.enqueue(embed_app.echo, value="later")
        seen_in_route["score"] = await redis.zscore("arq:queue", job_id)
        seen_in_route["status"] = await status_of(redis, job_id)
        return {"job_id": job_id}

    async with serve(app) as client:
        before = time.time()
        response = await client.post("/probe")
        job_id = response.json()["job_id"]
        # Held: already durable in Redis while the route ran, deferred by the grace period.
        assert seen_in_route["status"] == JobState.deferred
        assert seen_in_route["score"] >= (before + settings.hold_grace_seconds - 1) * 1000
        # Released after the response, within the release window (HOLD_RELEASE_WINDOW_MS): due now.
        deadline = time.monotonic() + 5
        while (score := await redis.zscore("arq:queue", job_id)) is not None and score > time.time() * 1000:
            assert time.monotonic() < deadline, "the held job was never released"
            await asyncio.sleep(0.005)
        assert score is not None
    await run_burst_worker()
    assert await status_of(redis, job_id) == JobState.complete


async def test_after_response_is_removed_when_the_route_raises(user_app: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await user_app.post("/echo", params={"timing": "after_response", "fail": True, "job_id": "held-1"})
    assert response.status_code == 400
    # Removed in the background right after the answer (it is held meanwhile, so it cannot run).
    deadline = time.monotonic() + 5
    while await redis.zcard("arq:queue"):
        assert time.monotonic() < deadline, "the held job of a route that raised was never removed"
        await asyncio.sleep(0.005)
    assert await status_of(redis, "held-1") is None


async def test_all_three_modes_in_one_route(
    user_app: httpx.AsyncClient, redis: ArqRedis, run_burst_worker: RunWorker
) -> None:
    response = await user_app.post("/two")
    ids = response.json()
    await run_burst_worker()
    for job_id in ids.values():
        assert await status_of(redis, job_id) == JobState.complete
    record = await read_job(redis, "arq:queue", ids["after_response"])
    assert record is not None and record.result == "positional"  # positional arguments map to the parameters


async def test_a_held_job_nobody_releases_runs_after_the_grace_period(
    settings: Settings, registry: Registry, redis: ArqRedis, run_burst_worker: RunWorker
) -> None:
    held = await holding.hold(redis, registry.get("echo"), {"value": 1}, grace_s=0.5, job_id="orphan")
    assert held.held_until - held.run_at >= timedelta(seconds=0.49)
    assert await status_of(redis, "orphan") == JobState.deferred
    await run_burst_worker()  # a burst worker waits for jobs coming due, so this returns once it ran
    record = await read_job(redis, "arq:queue", "orphan")
    assert record is not None and record.status == JobState.complete
    assert record.started_at is not None and record.started_at >= held.held_until - timedelta(milliseconds=5)


async def test_release_keeps_the_jobs_own_later_time_and_leaves_an_aborted_job_alone(
    registry: Registry, redis: ArqRedis
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    held = await holding.hold(redis, registry.get("echo"), {"value": 1}, grace_s=30, job_id="d", defer_until=later)
    gone = await holding.hold(redis, registry.get("echo"), {"value": 1}, grace_s=30, job_id="gone")
    await redis.zrem("arq:queue", "gone")
    await holding.release(redis, "arq:queue", [held, gone])
    assert await redis.zscore("arq:queue", "d") == pytest.approx(later.timestamp() * 1000, abs=2)
    assert await redis.zscore("arq:queue", "gone") is None


async def test_releases_of_many_requests_go_out_as_one_write(registry: Registry, redis: ArqRedis) -> None:
    releases = HeldReleases(redis, "arq:queue", window_s=0.05, inflight=InFlight())
    held = [
        await holding.hold(redis, registry.get("echo"), {"value": n}, grace_s=30, job_id=f"r{n}") for n in range(20)
    ]
    await redis.config_resetstat()
    for item in held:  # twenty requests' responses sent within one window
        releases.release([item])
    assert await redis.zscore("arq:queue", "r0") > time.time() * 1000  # nothing written before the window ends
    await releases.flush()
    stats = await redis.info("commandstats")
    assert stats["cmdstat_zadd"]["calls"] == 1
    now_ms = time.time() * 1000
    assert all(score <= now_ms for _, score in await redis.zrange("arq:queue", 0, -1, withscores=True))


async def test_with_a_release_window_a_burst_of_requests_is_released_in_one_write(
    redis_server: Any, registry: Registry, redis: ArqRedis
) -> None:
    windowed = make_settings(redis_server.url, hold_release_window_ms=200)
    async with serve(embed_app.build(windowed, registry)) as client:
        await redis.config_resetstat()
        answers = await asyncio.gather(
            *(client.post("/echo", params={"timing": "after_response", "job_id": f"w{n}"}) for n in range(10))
        )
        assert [answer.status_code for answer in answers] == [200] * 10
        deadline = time.monotonic() + 5
        while any(score > time.time() * 1000 for _, score in await redis.zrange("arq:queue", 0, -1, withscores=True)):
            assert time.monotonic() < deadline, "the held jobs were never released"
            await asyncio.sleep(0.01)
        assert await redis.zcard("arq:queue") == 10
        zadds = (await redis.info("commandstats"))["cmdstat_zadd"]["calls"]
        releases = zadds - 10 * 2  # each hold's enqueue script makes two (the queue, the index)
        assert 1 <= releases <= 2  # the ten releases went out in one write (two if a window closed between)


async def test_a_release_that_fails_is_only_late(registry: Registry, redis: ArqRedis) -> None:
    held = await holding.hold(redis, registry.get("echo"), {"value": 1}, grace_s=30, job_id="late")
    unreachable = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    releases = HeldReleases(unreachable, "arq:queue", window_s=0, inflight=InFlight())
    releases.release([held])
    await releases.flush()  # logged, not raised: the hold runs out and the queue runs the job anyway
    assert await redis.zscore("arq:queue", "late") >= held.held_until.timestamp() * 1000 - 1
    await unreachable.aclose()


async def test_handle_refuses_a_reserved_id_and_invalid_arguments(
    settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    app = embed_app.build(settings, registry)
    errors: list[str] = []

    @app.post("/bad")
    async def bad(jobs: embed_app.JobsDep) -> None:
        for call in (
            lambda: jobs.options(job_id="platform:x").enqueue(embed_app.echo, value=1),
            lambda: jobs.on_success.enqueue(embed_app.sleep_for, seconds="soon"),  # type: ignore[arg-type]
            lambda: jobs.options("after_response").enqueue(embed_app.sleep_for, seconds="soon"),  # type: ignore[arg-type]
        ):
            try:
                await call()
            except ValueError as exc:
                errors.append(type(exc).__name__)

    async with serve(app) as client:
        assert (await client.post("/bad")).status_code == 200
    assert errors == ["InvalidJobArguments"] * 3  # a 422 HTTPException, and a ValueError
    assert await redis.zcard("arq:queue") == 0


async def test_a_route_that_does_not_catch_them_answers_422_and_409(
    user_app: httpx.AsyncClient, redis: ArqRedis
) -> None:
    reserved = await user_app.post("/echo", params={"job_id": "platform:mine"})
    assert reserved.status_code == 422
    assert reserved.json()["detail"][0]["loc"] == ["job", "job_id"]
    for timing in ("now", "after_response"):
        await user_app.post("/echo", params={"timing": timing, "job_id": f"x-{timing}"})
        again = await user_app.post("/echo", params={"timing": timing, "job_id": f"x-{timing}"})
        assert again.status_code == 409
        assert "already exists" in again.json()["detail"]
    bad = await user_app.post("/bad-email")
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["detail"]] == [["job", "send_welcome_email", "email"]]


async def test_shutdown_waits_for_writes_in_flight() -> None:
    inflight = InFlight()
    done: list[bool] = []

    async def slow_write() -> None:
        await asyncio.sleep(0.2)
        done.append(True)

    task = asyncio.create_task(inflight.run(slow_write()))
    await asyncio.sleep(0)
    assert await inflight.drain(5)
    assert done == [True]
    await task


async def test_on_success_jobs_are_one_batch_and_a_duplicate_id_is_kept(
    user_app: httpx.AsyncClient, redis: ArqRedis
) -> None:
    await user_app.post("/echo", params={"timing": "on_success", "job_id": "same", "value": "first"})
    again = await user_app.post("/echo", params={"timing": "on_success", "job_id": "same", "value": "second"})
    assert again.status_code == 200  # the id already names a job: kept, logged, not an error after the fact
    record = await read_job(redis, "arq:queue", "same")
    assert record is not None and record.kwargs == {"value": "first"}


def test_grace_period_is_a_setting(redis_server: Any) -> None:
    assert make_settings(redis_server.url, hold_grace_seconds=2).hold_grace_seconds == 2
    assert make_settings(redis_server.url).hold_grace_seconds == 30


async def test_timing_modes_other_than_now_need_a_request(
    settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    from service.handle import Jobs

    jobs = Jobs(redis, registry, settings, InFlight())  # outside a request: no exit stacks to hook
    assert await jobs.enqueue(embed_app.echo, value=1)
    with pytest.raises(RuntimeError, match="need a request"):
        await jobs.after_response.enqueue(embed_app.echo, value=1)


async def test_on_success_jobs_that_cannot_be_written_answer_503(
    registry: Registry, redis_server: Any, redis: ArqRedis
) -> None:
    unreachable = make_settings(f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.5)
    async with serve(embed_app.build(unreachable, registry)) as client:
        response = await client.post("/echo", params={"timing": "on_success"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"


async def test_per_call_options_in_every_timing_mode(settings: Settings, registry: Registry, redis: ArqRedis) -> None:
    app = embed_app.build(settings, registry)
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=2)  # naive: read as UTC, like the API

    @app.post("/options")
    async def options(jobs: embed_app.JobsDep) -> dict[str, str]:
        return {
            "now": await jobs.options("now", job_id="o-now", defer_by=60).enqueue(embed_app.echo, value=1),
            "on_success": await jobs.options("on_success", job_id="o-ok", defer_until=later).enqueue(
                embed_app.echo, value=2
            ),
            "after_response": await jobs.options(Timing.after_response, job_id="o-after", defer_by=90).enqueue(
                embed_app.echo, value=3
            ),
        }

    async with serve(app) as client:
        started = time.time()
        response = await client.post("/options")
    assert response.json() == {"now": "o-now", "on_success": "o-ok", "after_response": "o-after"}
    scores = {job_id: await redis.zscore("arq:queue", job_id) for job_id in ("o-now", "o-ok", "o-after")}
    assert scores["o-now"] == pytest.approx((started + 60) * 1000, abs=1500)
    assert scores["o-ok"] == pytest.approx(later.replace(tzinfo=UTC).timestamp() * 1000, abs=2)
    assert scores["o-after"] == pytest.approx((started + 90) * 1000, abs=1500)  # released to its own time


async def test_an_id_given_twice_on_success_fails_in_the_route(
    settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    app = embed_app.build(settings, registry)

    @app.post("/twice")
    async def twice(jobs: embed_app.JobsDep) -> str:
        await jobs.options("on_success", job_id="t").enqueue(embed_app.echo, value=1)
        try:
            await jobs.options("on_success", job_id="t").enqueue(embed_app.echo, value=2)
        except ValueError as exc:
            return str(exc)
        return "accepted twice"

    async with serve(app) as client:
        response = await client.post("/twice")
    assert "already enqueued" in response.json()
    record = await read_job(redis, "arq:queue", "t")
    assert record is not None and record.kwargs == {"value": 1}


async def test_the_handle_without_the_platforms_lifespan_says_what_is_missing() -> None:
    app = FastAPI()

    @app.post("/x")
    async def x(jobs: embed_app.JobsDep) -> None: ...

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.raises(RuntimeError, match="needs the platform's lifespan"):
            await client.post("/x")


def test_the_mounted_router_keeps_readable_operation_ids(settings: Settings, registry: Registry) -> None:
    document = embed_app.build(settings, registry).openapi()
    operation_ids = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    assert {"enqueue_job", "get_job", "abort_job", "enqueue_echo", "get_echo_job", "list_dead"} <= operation_ids
