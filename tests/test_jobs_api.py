"""`/v1/jobs` through the real app and a real worker: enqueue, status, result, errors."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.connections import ArqRedis

from core import keys
from core.registry import Registry

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


async def test_enqueue_returns_202_with_location_and_queued_status(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await client.post("/v1/jobs", json=WELCOME)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["function"] == "send_welcome_email"
    assert response.headers["location"] == f"/v1/jobs/{body['job_id']}"
    assert await redis.zscore("arq:queue", body["job_id"]) is not None
    # Times to the millisecond, as Redis keeps them: the answer and a later read agree.
    view = (await client.get(response.headers["location"])).json()
    assert view["enqueued_at"] == body["enqueued_at"]
    assert view["scheduled_at"] == body["scheduled_at"]
    assert datetime.fromisoformat(body["enqueued_at"]).microsecond % 1000 == 0


async def test_full_flow_enqueue_worker_result(client: httpx.AsyncClient, run_burst_worker) -> None:
    accepted = (await client.post("/v1/jobs", json=WELCOME)).json()
    job_id = accepted["job_id"]
    worker = await run_burst_worker()
    assert worker.jobs_complete == 1
    result = await client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 200
    outcome = result.json()
    assert outcome["status"] == "complete" and outcome["finished"] is True
    assert outcome["result"]["to"] == "ada@example.com"
    assert outcome["result"]["subject"] == "Welcome, Ada!"
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["function"] == "send_welcome_email"
    assert view["kwargs"] == {"email": "ada@example.com", "name": "Ada"}
    assert view["tries"] == 1
    assert view["enqueued_at"] == accepted["enqueued_at"]
    assert view["scheduled_at"] == accepted["scheduled_at"]  # kept in the finished result
    assert view["enqueued_at"] <= view["started_at"] <= view["finished_at"]
    assert view["error"] is None and view["attempts"] == []


async def test_result_is_stored_as_json_not_pickle(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    job_id = (await client.post("/v1/jobs", json=WELCOME)).json()["job_id"]
    assert (await redis.get(keys.job(job_id))).startswith(b"{")
    await run_burst_worker()
    assert (await redis.get(keys.result(job_id))).startswith(b"{")


async def test_unknown_function_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"function": "launch_rockets", "kwargs": {}})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "function"]
    assert "launch_rockets" in error["msg"]


async def test_invalid_kwargs_are_422_naming_each_field(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await client.post(
        "/v1/jobs", json={"function": "send_welcome_email", "kwargs": {"email": "not-an-email", "extra": 1}}
    )
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert locs == {("body", "kwargs", "email"), ("body", "kwargs", "name"), ("body", "kwargs", "extra")}
    assert await redis.zcard("arq:queue") == 0


async def test_nested_kwargs_are_validated(client: httpx.AsyncClient) -> None:
    order = {"order_id": 7, "email": "bob@example.com", "items": [{"sku": "A", "quantity": 0, "unit_price": 1}]}
    response = await client.post("/v1/jobs", json={"function": "process_order", "kwargs": order})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "kwargs", "items", 0, "quantity"]


async def test_defer_by_and_defer_until_together_are_422(client: httpx.AsyncClient) -> None:
    when = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    response = await client.post("/v1/jobs", json={**WELCOME, "defer_by": 5, "defer_until": when})
    assert response.status_code == 422
    assert "not both" in response.json()["detail"][0]["msg"]


async def test_malformed_body_is_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    response = await client.post("/v1/jobs", json={**WELCOME, "defer_by": -1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "defer_by"]


async def test_existing_job_id_is_409(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/jobs", json={**WELCOME, "job_id": "welcome-ada"})
    assert first.status_code == 202 and first.json()["job_id"] == "welcome-ada"
    second = await client.post("/v1/jobs", json={**WELCOME, "job_id": "welcome-ada"})
    assert second.status_code == 409
    assert "welcome-ada" in second.json()["detail"][0]["msg"]


async def test_job_ids_in_the_platform_namespace_are_422(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    for job_id in ("platform:cron:record_heartbeat:1", "platform:order-1:receipt"):
        response = await client.post("/v1/jobs", json={**WELCOME, "job_id": job_id})
        assert response.status_code == 422, job_id
        assert response.json()["detail"][0]["loc"] == ["body", "job_id"]
        batch = await client.post("/v1/jobs/batch", json={"jobs": [WELCOME, {**WELCOME, "job_id": job_id}]})
        assert batch.status_code == 422
        assert batch.json()["detail"][0]["loc"] == ["body", "jobs", 1, "job_id"]
    assert await redis.zcard("arq:queue") == 0


@pytest.mark.parametrize(
    ("value", "loc"),
    [
        (2**64, ["body", "kwargs", "value"]),  # an integer beyond 64 bits
        ({"deep": [1, -(2**63) - 1]}, ["body", "kwargs", "value", "deep", 1]),
    ],
)
async def test_kwargs_json_cannot_carry_exactly_are_422_naming_the_field(
    client: httpx.AsyncClient, redis: ArqRedis, value: object, loc: list[object]
) -> None:
    body = {"function": "echo", "kwargs": {"value": value}}
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (loc, "not_exact_json")
    batch = await client.post("/v1/jobs/batch", json={"jobs": [{"function": "echo", "kwargs": {"value": 1}}, body]})
    assert batch.status_code == 422
    assert [(e["loc"], e["type"]) for e in batch.json()["detail"]] == [
        (["body", "jobs", 1, *loc[1:]], "not_exact_json")
    ]
    assert await redis.zcard("arq:queue") == 0


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b'"\\udc00"'])
async def test_nan_infinity_and_lone_surrogates_in_kwargs_are_422(
    client: httpx.AsyncClient, redis: ArqRedis, literal: bytes
) -> None:
    """Values JSON cannot carry exactly, sent the only way a client can (Python's json reads NaN and Infinity):
    refused, never stored as something else (NaN as null)."""
    content = b'{"function": "echo", "kwargs": {"value": {"x": ' + literal + b"}}}"
    response = await client.post("/v1/jobs", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "kwargs", "value", "x"], "not_exact_json")
    assert await redis.zcard("arq:queue") == 0


async def test_job_id_of_a_finished_job_is_still_409(client: httpx.AsyncClient, run_burst_worker) -> None:
    await client.post("/v1/jobs", json={**WELCOME, "job_id": "once"})
    await run_burst_worker()
    assert (await client.post("/v1/jobs", json={**WELCOME, "job_id": "once"})).status_code == 409


async def test_unknown_job_is_404_everywhere(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/v1/jobs/nope"), ("GET", "/v1/jobs/nope/result"), ("POST", "/v1/jobs/nope/abort")]:
        response = await client.request(method, path)
        assert response.status_code == 404, path
        assert "nope" in response.json()["detail"][0]["msg"]


async def test_defer_until_reports_deferred_with_scheduled_time(client: httpx.AsyncClient) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    body = (await client.post("/v1/jobs", json={**WELCOME, "defer_until": when.isoformat()})).json()
    assert body["status"] == "deferred"
    assert abs(datetime.fromisoformat(body["scheduled_at"]) - when) < timedelta(milliseconds=5)
    view = (await client.get(f"/v1/jobs/{body['job_id']}")).json()
    assert view["status"] == "deferred"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_defer_until_out_of_range_is_422_not_500(client: httpx.AsyncClient, when: str) -> None:
    response = await client.post("/v1/jobs", json={**WELCOME, "defer_until": when})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "defer_until"]
    batch = await client.post("/v1/jobs/batch", json={"jobs": [{**WELCOME, "defer_until": when}]})
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"] == ["body", "jobs", 0, "defer_until"]


async def test_defer_until_in_the_recent_past_runs_now(client: httpx.AsyncClient) -> None:
    when = datetime.now(UTC) - timedelta(days=30)
    body = (await client.post("/v1/jobs", json={**WELCOME, "defer_until": when.isoformat()})).json()
    assert body["status"] == "queued"


async def test_result_of_unfinished_job_is_202_with_status(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/v1/jobs", json=WELCOME)).json()["job_id"]
    response = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 0.2})
    assert response.status_code == 202
    assert response.json() == {
        "job_id": job_id,
        "status": "queued",
        "finished": False,
        "result": None,
        "error": None,
        "finished_at": None,
    }


async def test_result_wait_returns_as_soon_as_the_job_finishes(client: httpx.AsyncClient, running_worker) -> None:
    job_id = (await client.post("/v1/jobs", json={"function": "sleep_for", "kwargs": {"seconds": 0.3}})).json()[
        "job_id"
    ]
    response = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})
    assert response.status_code == 200
    assert response.json()["result"] == 0.3


async def test_failing_job_is_recorded_with_its_error(client: httpx.AsyncClient, run_burst_worker) -> None:
    job_id = (await client.post("/v1/jobs", json={"function": "fail_always", "kwargs": {"message": "boom"}})).json()[
        "job_id"
    ]
    worker = await run_burst_worker()
    assert worker.jobs_failed == 1
    outcome = (await client.get(f"/v1/jobs/{job_id}/result")).json()
    assert outcome["status"] == "failed"
    error = outcome["error"]
    assert {k: error[k] for k in ("kind", "type", "message")} == {
        "kind": "exception",
        "type": "ValueError",
        "message": "boom",
    }
    assert error["traceback"].rstrip().endswith("ValueError: boom")
    assert "fail_always" in error["traceback"]


async def test_job_exceeding_its_timeout_fails_with_timeout_error(
    client: httpx.AsyncClient, registry: Registry, run_burst_worker
) -> None:
    spec = registry.get("sleep_for")
    registry.replace_job("sleep_for", options=dataclasses.replace(spec.options, timeout_s=0.2, max_tries=1))
    job_id = (await client.post("/v1/jobs", json={"function": "sleep_for", "kwargs": {"seconds": 5}})).json()["job_id"]
    started = time.monotonic()
    worker = await run_burst_worker()
    assert time.monotonic() - started < 3  # cut off at its 0.2 s timeout, not after its 5 s sleep
    assert worker.jobs_failed == 1
    outcome = (await client.get(f"/v1/jobs/{job_id}/result")).json()
    assert outcome["status"] == "failed"
    assert outcome["error"]["kind"] == "timeout"
    assert outcome["error"]["type"] == "JobTimeout"


async def test_abort_honours_a_function_that_keeps_no_result(
    client: httpx.AsyncClient, redis: ArqRedis, registry: Registry
) -> None:
    spec = registry.get("echo")
    registry.replace_job("echo", options=dataclasses.replace(spec.options, keep_result_s=0))
    job_id = (await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}})).json()["job_id"]
    response = await client.post(f"/v1/jobs/{job_id}/abort")
    assert response.status_code == 200
    assert response.json()["status"] == "aborted"
    assert response.json()["error"]["kind"] == "aborted"
    assert response.json()["error"]["type"] == "JobAborted"
    assert await redis.exists(keys.result(job_id)) == 0  # keep_result=0, not the 1-day default
    assert await redis.zscore("arq:queue", job_id) is None
