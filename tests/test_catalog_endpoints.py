"""The read-only endpoints: functions, cron schedules, queues, workers, liveness and readiness."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import httpx
from arq.connections import ArqRedis

from core import keys
from core.registry import Registry
from settings import Settings
from tests.conftest import build_worker
from tests.support.waiting import wait_for

PLATFORM_FUNCTIONS = {"send_welcome_email", "process_order", "generate_report"}
TEST_FUNCTIONS = {"echo", "fail_always", "sleep_for", "record_start"}


async def test_functions_lists_platform_and_test_jobs_with_schema_and_options(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/functions")
    assert response.status_code == 200
    functions = {f["name"]: f for f in response.json()}
    assert functions.keys() >= PLATFORM_FUNCTIONS | TEST_FUNCTIONS
    for function in functions.values():
        assert function["description"], function["name"]
        assert function["arguments_schema"]["type"] == "object"
        assert set(function["options"]) == {"timeout_s", "max_tries", "keep_result_s"}

    welcome = functions["send_welcome_email"]
    assert welcome["description"] == "Send the welcome email to a new user."
    schema = welcome["arguments_schema"]
    assert sorted(schema["required"]) == ["email", "name"]
    assert schema["properties"]["email"]["format"] == "email"
    assert schema["additionalProperties"] is False
    assert welcome["options"]["timeout_s"] == 30
    assert welcome["options"]["max_tries"] == 5
    assert sorted(functions["generate_report"]["arguments_schema"]["required"]) == ["report_id", "rows"]


async def test_function_by_name_and_unknown_function_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/functions/process_order")
    assert response.status_code == 200
    process_order = response.json()
    assert process_order["name"] == "process_order"
    assert sorted(process_order["arguments_schema"]["required"]) == ["email", "items", "order_id"]
    assert process_order["options"]["timeout_s"] == 60

    missing = await client.get("/v1/functions/launch_rockets")
    assert missing.status_code == 404
    assert "launch_rockets" in missing.json()["detail"][0]["msg"]


async def test_cron_lists_schedules_with_next_run_and_no_last_run_before_any_run(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/cron")
    assert response.status_code == 200
    crons = {c["name"]: c for c in response.json()}
    assert {"record_heartbeat", "prune_stale_records"} <= crons.keys()
    now = datetime.now(UTC)
    for cron in crons.values():
        assert cron["description"], cron["name"]
        assert datetime.fromisoformat(cron["next_run"]) > now
        assert cron["last_run"] is None
    assert crons["prune_stale_records"]["schedule"] == {"minute": [0, 10, 20, 30, 40, 50], "second": 30}


async def test_queues_count_due_and_deferred_jobs(client: httpx.AsyncClient) -> None:
    for value in (1, 2):
        assert (await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": value}})).status_code == 202
    deferred = await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 3}, "defer_by": 60})
    assert deferred.status_code == 202

    response = await client.get("/v1/queues")
    assert response.status_code == 200
    (queue,) = response.json()
    assert {k: queue[k] for k in ("name", "queued", "deferred", "in_progress", "workers")} == {
        "name": "arq:queue", "queued": 2, "deferred": 1, "in_progress": 0, "workers": 0,
    }  # fmt: skip


async def test_workers_is_empty_without_a_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/workers")
    assert response.status_code == 200
    assert response.json() == []


async def test_workers_lists_a_running_worker(client: httpx.AsyncClient, running_worker) -> None:
    async def workers() -> list[dict[str, Any]]:
        return (await client.get("/v1/workers")).json()

    [worker] = await wait_for(workers, lambda listed: len(listed) == 1, timeout=5)
    assert worker["pid"] == os.getpid()
    assert worker["queue"] == "arq:queue"
    assert worker["jobs"] == {"complete": 0, "failed": 0, "retried": 0, "ongoing": 0}
    assert datetime.fromisoformat(worker["started_at"]) <= datetime.fromisoformat(worker["last_seen"])

    # Its counters follow the jobs it runs (published on its next heartbeat).
    for body in ({"function": "echo", "kwargs": {"value": 1}}, {"function": "fail_always", "kwargs": {"message": "x"}}):
        job_id = (await client.post("/v1/jobs", json=body)).json()["job_id"]
        assert (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 5})).status_code == 200
    [worker] = await wait_for(
        workers, lambda listed: listed[0]["jobs"]["complete"] + listed[0]["jobs"]["failed"] == 2, timeout=5
    )
    assert worker["jobs"] == {"complete": 1, "failed": 1, "retried": 0, "ongoing": 0}


async def test_health_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_503_without_a_live_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "redis": "ok", "workers": 0}


async def test_ready_is_200_with_a_live_worker(client: httpx.AsyncClient, running_worker) -> None:
    response = await wait_for(lambda: client.get("/ready"), lambda r: r.status_code == 200, timeout=5)
    assert response.json() == {"status": "ok", "redis": "ok", "workers": 1}


async def test_a_worker_built_from_arq_arguments_alone_runs_jobs_but_is_not_listed(
    client: httpx.AsyncClient, settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    """Only a worker the platform builds (with `ctx["settings"]`, as worker.py does) announces itself."""
    worker = build_worker(settings, registry, ctx={})
    task = asyncio.create_task(worker.async_run())
    try:
        job_id = (await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 5}})).json()["job_id"]
        outcome = (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 5})).json()
        assert outcome["status"] == "complete" and outcome["result"] == 5
        assert (await client.get("/v1/workers")).json() == []
        assert await redis.zcard(keys.WORKERS) == 0
    finally:
        worker.handle_sig(2)
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
