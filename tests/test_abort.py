"""`POST /v1/jobs/{id}/abort`: a queued or deferred job is aborted on the spot and never runs; a running job
is cancelled by its worker; a finished job cannot be aborted."""

from __future__ import annotations

from typing import Any

import httpx
from arq.connections import ArqRedis

from tests.support.waiting import wait_for


async def enqueue(client: httpx.AsyncClient, function: str, **body: Any) -> str:
    response = await client.post("/v1/jobs", json={"function": function, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def test_aborted_queued_job_never_runs(client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker) -> None:
    job_id = await enqueue(client, "record_start", kwargs={"token": "queued"})

    response = await client.post(f"/v1/jobs/{job_id}/abort")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "aborted"
    assert (body["error"]["kind"], body["error"]["type"]) == ("aborted", "JobAborted")
    assert body["started_at"] is None  # it never started
    assert body["finished_at"] is not None

    worker = await run_burst_worker()
    assert worker.jobs_complete == 0
    assert worker.jobs_failed == 0
    assert await redis.get("test:started:queued") is None
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["status"] == "aborted"
    assert view["started_at"] is None and view["tries"] == 0


async def test_aborted_deferred_job_leaves_the_queue(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    job_id = await enqueue(client, "record_start", kwargs={"token": "deferred"}, defer_by=60)
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "deferred"

    response = await client.post(f"/v1/jobs/{job_id}/abort")
    assert response.status_code == 200
    assert response.json()["status"] == "aborted"
    assert await redis.zscore("arq:queue", job_id) is None
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "aborted"


async def test_aborted_running_job_is_cancelled_by_its_worker(client: httpx.AsyncClient, running_worker) -> None:
    job_id = await enqueue(client, "sleep_for", kwargs={"seconds": 30})

    async def view() -> dict[str, Any]:
        return (await client.get(f"/v1/jobs/{job_id}")).json()

    await wait_for(view, lambda v: v["status"] == "in_progress", timeout=5)
    response = await client.post(f"/v1/jobs/{job_id}/abort")
    assert response.status_code in (200, 202)

    aborted = await wait_for(view, lambda v: v["status"] == "aborted", timeout=5)
    assert (aborted["error"]["kind"], aborted["error"]["type"]) == ("aborted", "JobAborted")
    assert aborted["result"] is None
    assert aborted["started_at"] is not None and aborted["started_at"] <= aborted["finished_at"]
    assert running_worker.jobs_complete == 0


async def test_aborting_a_finished_job_is_409(client: httpx.AsyncClient, run_burst_worker) -> None:
    job_id = await enqueue(client, "echo", kwargs={"value": 1})
    await run_burst_worker()

    response = await client.post(f"/v1/jobs/{job_id}/abort")
    assert response.status_code == 409
    assert job_id in response.json()["detail"][0]["msg"]
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["status"] == "complete"
    assert view["result"] == 1


async def test_aborting_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs/no-such-job/abort")
    assert response.status_code == 404
    assert "no-such-job" in response.json()["detail"][0]["msg"]


async def test_aborting_a_job_waiting_for_its_retry_keeps_its_history(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    job_id = await enqueue(client, "fail_then_succeed", kwargs={"failures": 99})
    worker = await run_burst_worker(max_burst_jobs=1)  # try 1 fails; try 2 waits 0.3 s
    assert worker.jobs_retried == 1
    waiting = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert waiting["status"] in ("deferred", "queued") and waiting["tries"] == 1  # no worker runs it meanwhile

    response = await client.post(f"/v1/jobs/{job_id}/abort")
    assert response.status_code == 200
    aborted = response.json()
    assert (aborted["status"], aborted["error"]["type"]) == ("aborted", "JobAborted")
    assert [a["try"] for a in aborted["attempts"]] == [1]
    assert aborted["tries"] == 1  # a worker did start it once
    worker = await run_burst_worker()
    assert worker.jobs_complete == worker.jobs_failed == worker.jobs_retried == 0
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "aborted"


async def test_abort_is_a_post_and_delete_is_not_an_abort(client: httpx.AsyncClient) -> None:
    """Abort moved from `DELETE /v1/jobs/{id}` (which promised the job would be gone) to an action."""
    response = await client.delete("/v1/jobs/some-job")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    document = (await client.get("/openapi.json")).json()
    assert "delete" not in document["paths"]["/v1/jobs/{job_id}"]
    assert document["paths"]["/v1/jobs/{job_id}/abort"]["post"]["operationId"] == "abort_job"
