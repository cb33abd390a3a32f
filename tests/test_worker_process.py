"""The real worker process, `arq worker.WorkerSettings`, started as a user would: it runs jobs enqueued
over HTTP, announces itself, runs cron jobs, drains on SIGTERM and logs JSON lines."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.embedded_redis import RedisProcess
from tests.support.processes import start_worker, stop_process
from tests.support.waiting import wait_for

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}
StartWorker = Callable[..., Awaitable[subprocess.Popen[bytes]]]


@pytest.fixture
def worker_log(tmp_path: Path) -> Path:
    return tmp_path / "worker.log"


@pytest.fixture
def start_worker_process(
    redis_server: RedisProcess, client: httpx.AsyncClient, worker_log: Path
) -> Iterator[StartWorker]:
    """Start a real worker process on the (flushed) test Redis and wait until its heartbeat shows in
    `GET /v1/workers`; every process started is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    async def start(**env: str) -> subprocess.Popen[bytes]:
        process = start_worker(redis_server.url, worker_log, **env)
        started.append(process)
        await wait_until_listed(client, process, worker_log)
        return process

    try:
        yield start
    finally:
        for process in started:
            stop_process(process)


async def wait_until_listed(client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> None:
    async def workers() -> list[dict[str, Any]]:
        if process.poll() is not None:
            raise AssertionError(f"the worker exited with {process.returncode}; its log:\n{log.read_text()[-3000:]}")
        return (await client.get("/v1/workers")).json()

    await wait_for(workers, lambda listed: any(w["pid"] == process.pid for w in listed), timeout=10)


def json_log_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_real_worker_runs_a_job_enqueued_over_http(
    client: httpx.AsyncClient, start_worker_process: StartWorker
) -> None:
    await start_worker_process()
    job_id = (await client.post("/v1/jobs", json=WELCOME)).json()["job_id"]

    response = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})

    assert response.status_code == 200
    outcome = response.json()
    assert outcome["status"] == "complete"
    assert outcome["result"]["to"] == "ada@example.com"
    assert outcome["result"]["subject"] == "Welcome, Ada!"


async def test_real_worker_makes_the_api_ready_and_is_listed_by_pid(
    client: httpx.AsyncClient, start_worker_process: StartWorker
) -> None:
    assert (await client.get("/ready")).status_code == 503
    process = await start_worker_process()

    [worker] = (await client.get("/v1/workers")).json()
    assert worker["pid"] == process.pid
    assert worker["queue"] == "arq:queue"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "redis": "ok", "workers": 1}


async def test_real_worker_runs_the_heartbeat_cron_and_records_it(
    client: httpx.AsyncClient, start_worker_process: StartWorker
) -> None:
    await start_worker_process(HEARTBEAT_EVERY_SECONDS="1")

    async def heartbeat() -> dict[str, Any]:
        crons = (await client.get("/v1/cron")).json()
        return next(c for c in crons if c["name"] == "record_heartbeat")

    cron = await wait_for(
        heartbeat, lambda c: c["last_run"] is not None and c["last_run"]["status"] == "complete", timeout=5
    )
    last_run = cron["last_run"]
    assert last_run["runs"] >= 1
    assert last_run["error"] is None
    assert last_run["started_at"] <= last_run["finished_at"]
    assert last_run["job_id"].startswith("platform:cron:record_heartbeat:")


async def test_sigterm_lets_the_running_job_finish_then_exits_0(
    client: httpx.AsyncClient, start_worker_process: StartWorker
) -> None:
    process = await start_worker_process(SHUTDOWN_GRACE_SECONDS="10")
    job_id = (await client.post("/v1/jobs", json={"function": "sleep_for", "kwargs": {"seconds": 1.5}})).json()[
        "job_id"
    ]

    async def status() -> str:
        return (await client.get(f"/v1/jobs/{job_id}")).json()["status"]

    await wait_for(status, lambda s: s == "in_progress", timeout=10)
    returncode = stop_process(process, signal.SIGTERM, timeout=10)

    assert returncode == 0
    outcome = (await client.get(f"/v1/jobs/{job_id}/result")).json()
    assert outcome["status"] == "complete"
    assert outcome["result"] == 1.5


async def test_real_worker_logs_job_lifecycle_as_json(
    client: httpx.AsyncClient, start_worker_process: StartWorker, worker_log: Path
) -> None:
    await start_worker_process()
    job_id = (await client.post("/v1/jobs", json=WELCOME)).json()["job_id"]
    assert (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})).json()["status"] == "complete"

    async def job_events() -> dict[str, dict[str, Any]]:
        return {e["event"]: e for e in json_log_lines(worker_log) if e.get("job_id") == job_id}

    events = await wait_for(job_events, lambda found: "job.succeeded" in found, timeout=5)
    for name in ("job.started", "job.succeeded"):
        assert events[name].get("function") == "send_welcome_email", events[name]
        assert events[name].get("try_") == 1, events[name]
    assert events["job.succeeded"]["duration_ms"] > 0


async def test_real_worker_logs_retries_failure_dead_letter_and_abort(
    client: httpx.AsyncClient, start_worker_process: StartWorker, worker_log: Path
) -> None:
    await start_worker_process()
    failing = {"function": "fail_then_succeed", "kwargs": {"failures": 99}}
    failing_id = (await client.post("/v1/jobs", json=failing)).json()["job_id"]
    running = {"function": "sleep_for", "kwargs": {"seconds": 30}}
    running_id = (await client.post("/v1/jobs", json=running)).json()["job_id"]
    assert (await client.get(f"/v1/jobs/{failing_id}/result", params={"wait": 10})).json()["status"] == "failed"
    assert (await client.post(f"/v1/jobs/{running_id}/abort")).status_code in (200, 202)

    async def events() -> list[dict[str, Any]]:
        return [e for e in json_log_lines(worker_log) if e.get("job_id") in (failing_id, running_id)]

    found = await wait_for(events, lambda found: any(e["event"] == "job.aborted" for e in found), timeout=5)
    failing_events = [(e["event"], e.get("try_")) for e in found if e["job_id"] == failing_id]
    assert failing_events == [
        ("job.started", 1),
        ("job.retrying", 1),
        ("job.started", 2),
        ("job.retrying", 2),
        ("job.started", 3),
        ("job.failed", 3),
        ("job.dead", 3),
    ]
    by_event = {e["event"]: e for e in found if e["job_id"] == failing_id}
    assert by_event["job.retrying"]["error"] == "ConnectionError" and by_event["job.retrying"]["retry_in_s"] == 0.6
    assert (by_event["job.failed"]["kind"], by_event["job.failed"]["error"]) == ("exception", "ConnectionError")
    assert by_event["job.dead"]["reason"] == "failed 3 of 3 tries"
    assert all(e.get("function") == "fail_then_succeed" for e in by_event.values())
    assert [e["event"] for e in found if e["job_id"] == running_id] == ["job.started", "job.aborted"]


async def test_real_worker_log_has_one_format_json_only(
    client: httpx.AsyncClient, start_worker_process: StartWorker, worker_log: Path
) -> None:
    await start_worker_process()
    job_id = (await client.post("/v1/jobs", json=WELCOME)).json()["job_id"]
    assert (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})).json()["status"] == "complete"

    # arq's own stdlib logs (its health record, every HEALTH_CHECK_INTERVAL_SECONDS) go through the same renderer.
    async def arq_events() -> list[dict[str, Any]]:
        return [e for e in json_log_lines(worker_log) if str(e.get("logger", "")).startswith("arq")]

    await wait_for(arq_events, bool, timeout=5)
    lines = [line for line in worker_log.read_text().splitlines() if line.strip()]
    assert lines
    not_json = [line for line in lines if not line.startswith("{")]
    assert not_json == []
