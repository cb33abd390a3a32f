"""The outcome path's edges (issue 7): a result JSON cannot carry exactly, or any exception a job raises,
`BaseException` included, is a failed try with a clear error kind, retried and dead-lettered like any failure,
and the worker keeps running; garbage in a platform record is skipped, never a 500; a batch Redis refuses is
stored not at all; a cron tick id cannot be squatted, and a tick that did not run is counted as missed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from core import cron_runs, keys
from core.embedded_redis import free_port, start_redis
from core.redis import open_api_pool
from tests.conftest import TEST_JOB_MODULES, api_client, make_settings
from tests.support.outcome_jobs import RESULTS

MODULES = [*TEST_JOB_MODULES, "tests.support.outcome_jobs"]


@pytest.fixture
def settings(redis_server: Any) -> Any:
    return make_settings(redis_server.url, job_modules=MODULES, max_result_bytes=10_000)


async def enqueue(client: httpx.AsyncClient, function: str, **kwargs: Any) -> str:
    response = await client.post("/v1/jobs", json={"function": function, "kwargs": kwargs})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def dead_letter(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/dead/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("what", sorted(RESULTS))
async def test_a_result_json_cannot_carry_fails_the_try_and_dies_after_its_retries(
    client: httpx.AsyncClient, run_burst_worker: Callable[..., Awaitable[Any]], what: str
) -> None:
    job_id = await enqueue(client, "return_unencodable", what=what)
    worker = await run_burst_worker()
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["status"] == "failed" and view["result"] is None
    assert view["error"]["kind"] == "unencodable_result" and view["error"]["type"] == "UnencodableResult"
    assert [a["kind"] for a in view["attempts"]] == ["unencodable_result", "unencodable_result"]
    letter = await dead_letter(client, job_id)
    assert letter["tries"] == 2 and letter["error"]["kind"] == "unencodable_result" and letter["requeueable"]
    assert worker.jobs_complete == 0 and worker.jobs_failed == 1 and worker.jobs_retried == 1


async def test_a_result_that_breaks_its_declared_return_type_fails(
    client: httpx.AsyncClient, run_burst_worker: Callable[..., Awaitable[Any]]
) -> None:
    job_id = await enqueue(client, "return_declared_int")
    await run_burst_worker()
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["status"] == "failed" and view["error"]["kind"] == "unencodable_result"
    assert "declared return type" in view["error"]["message"]


async def test_a_result_over_max_result_bytes_is_not_stored(
    client: httpx.AsyncClient, run_burst_worker: Callable[..., Awaitable[Any]], redis: ArqRedis
) -> None:
    small, large = await enqueue(client, "big_result", size=100), await enqueue(client, "big_result", size=20_000)
    await run_burst_worker()
    assert (await client.get(f"/v1/jobs/{small}")).json()["result"] == "x" * 100
    view = (await client.get(f"/v1/jobs/{large}")).json()
    assert view["status"] == "failed" and view["error"]["kind"] == "result_too_large"
    assert len(await redis.get(keys.result(large)) or b"") < 5_000  # the failure, not the 20 kB result


@pytest.mark.parametrize("what", ["system_exit", "keyboard_interrupt", "cancelled", "str_raises"])
async def test_any_exception_is_a_failed_try_and_the_worker_keeps_running(
    client: httpx.AsyncClient, run_burst_worker: Callable[..., Awaitable[Any]], what: str
) -> None:
    bad = await enqueue(client, "raise_base_exception", what=what)
    good = [await enqueue(client, "echo", value=n) for n in range(5)]
    worker = await run_burst_worker()
    assert worker.jobs_complete == 5
    for n, job_id in enumerate(good):
        assert (await client.get(f"/v1/jobs/{job_id}/result")).json()["result"] == n
    view = (await client.get(f"/v1/jobs/{bad}")).json()
    assert view["status"] == "failed" and view["error"]["kind"] == "exception"
    expected_type = {
        "system_exit": "SystemExit",
        "keyboard_interrupt": "KeyboardInterrupt",
        "cancelled": "CancelledError",
        "str_raises": "BadStr",
    }
    assert view["error"]["type"] == expected_type[what]
    assert view["error"]["traceback"] and "raise_base_exception" in view["error"]["traceback"]
    assert len(view["attempts"]) == 2 and all(a["traceback"] for a in view["attempts"])
    letter = await dead_letter(client, bad)
    assert letter["error"]["type"] == expected_type[what] and letter["error"]["traceback"]


async def test_a_failing_try_records_a_bounded_traceback(
    client: httpx.AsyncClient, run_burst_worker: Callable[..., Awaitable[Any]]
) -> None:
    job_id = await enqueue(client, "fail_always", message="boom " * 10_000)
    await run_burst_worker()
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["error"] == {**view["error"], "kind": "exception", "type": "ValueError"}
    assert "ValueError" in view["error"]["traceback"] and len(view["error"]["traceback"]) <= 8_100


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        (keys.worker("w1"), b"not json", "/v1/workers"),
        (keys.worker("w1"), b'{"worker_id": 1}', "/ready"),
        (keys.worker("w1"), b"[1, 2]", "/v1/queues"),
        (keys.cron_runs("record_heartbeat"), {"runs": "many", "last_started_at": "yesterday"}, "/v1/cron"),
        (keys.cron_ticks("record_heartbeat"), {"soon": 1}, "/v1/cron"),
        (keys.progress("j1"), b'{"done": "half"}', "/v1/jobs/j1"),
        (keys.attempts("j1"), [b"garbage", b'{"try": "x"}'], "/v1/jobs/j1"),
        (keys.dead_letter("d1"), b'{"job_id": "d1", "kwargs": 5}', "/v1/dead"),
        (keys.result("j2"), b"\x80\x04pickle", "/v1/jobs/j2"),
        (keys.job("j3"), b'{"f": 5, "k": []}', "/v1/jobs/j3"),
    ],
)
async def test_garbage_in_a_platform_record_is_skipped_not_a_500(
    client: httpx.AsyncClient, redis: ArqRedis, key: str, value: Any, path: str
) -> None:
    if isinstance(value, dict):
        if key.startswith(keys.cron_ticks("")):
            await redis.zadd(key, value)
        else:
            await redis.hset(key, mapping=value)  # type: ignore[misc]
    elif isinstance(value, list):
        await redis.rpush(key, *value)  # type: ignore[misc]
    else:
        await redis.set(key, value)
    if key == keys.worker("w1"):
        await redis.zadd(keys.WORKERS, {"w1": time.time()})
    if key == keys.dead_letter("d1"):
        await redis.zadd(keys.DEAD_LETTERS, {"d1": time.time()})
    if key in (keys.progress("j1"), keys.attempts("j1")):
        await redis.set(keys.job("j1"), b'{"t": null, "f": "echo", "a": [], "k": {"value": 1}, "et": 1}')
    if key == keys.job("j3"):
        await redis.zadd("arq:queue", {"j3": time.time() * 1000})
    response = await client.get(path)
    assert response.status_code in (200, 503), response.text  # 503 only for /ready with no live worker
    assert "internal error" not in response.text


@pytest.fixture
async def full_redis(tmp_path: Path) -> AsyncIterator[str]:
    """A redis-server of its own, near its memory limit with `noeviction`."""
    server = start_redis(free_port(), tmp_path, appendonly=False, log_file=tmp_path / "redis.log")
    try:
        yield server.url
    finally:
        server.stop()


async def test_a_batch_redis_refuses_is_not_stored_at_all(full_redis: str) -> None:
    settings = make_settings(full_redis, job_modules=MODULES)
    pool = open_api_pool(settings)
    try:
        used = int((await pool.info("memory"))["used_memory"])
        await pool.config_set("maxmemory-policy", "noeviction")
        await pool.config_set("maxmemory", str(used + 60_000))
        async with api_client(settings) as client:
            body = {"jobs": [{"function": "echo", "kwargs": {"value": "x" * 2_000}} for _ in range(100)]}
            response = await client.post("/v1/jobs/batch", json=body)
            assert response.status_code == 503, response.text
            assert await pool.zcard(settings.queue_name) == 0
            assert await pool.keys("arq:job:*") == []
            await pool.config_set("maxmemory", "0")
            response = await client.post("/v1/jobs/batch", json=body)
            assert response.status_code == 202 and len(response.json()["accepted"]) == 100
            assert await pool.zcard(settings.queue_name) == 100
    finally:
        await pool.aclose()


async def test_a_client_cannot_take_a_cron_tick_id(client: httpx.AsyncClient) -> None:
    tick_id = keys.cron_tick_job_id("record_heartbeat", (int(time.time()) // 60 + 1) * 60_000)
    body = {"function": "echo", "kwargs": {"value": 1}, "job_id": tick_id, "defer_by": 120}
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "job_id"]
    batch = await client.post("/v1/jobs/batch", json={"jobs": [body]})
    assert batch.status_code == 422


async def test_a_tick_that_did_not_run_counts_as_missed(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    minute = 60_000
    # The latest minute at least 2 minutes ago; arq schedules a tick 123 ms past its second.
    last = (int(time.time() * 1000) // minute - 2) * minute + 123
    ran = [last - 5 * minute, last - 4 * minute, last - 2 * minute, last]  # the ticks 3 and 1 minutes back never ran
    for tick in ran:
        await cron_runs.record_start(redis, "record_heartbeat", keys.cron_tick_job_id("record_heartbeat", tick))
    crons = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    # The ticks after `last` are due too: one, or two when the latest one is already more than 5 s old.
    assert crons["record_heartbeat"]["missed_runs"] in (2 + 1, 2 + 2)
