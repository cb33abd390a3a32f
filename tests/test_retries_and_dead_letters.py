"""Retry policy, attempt history and dead letters, through the real app and real workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from core import keys


def error_of(view: dict[str, Any]) -> tuple[str, str, str]:
    """kind, type and message of an error view (its traceback is checked on its own)."""
    return view["kind"], view["type"], view["message"]


async def _enqueue(client: httpx.AsyncClient, function: str, **kwargs: object) -> str:
    response = await client.post("/v1/jobs", json={"function": function, "kwargs": kwargs})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def test_failing_try_is_retried_with_backoff_and_recorded(client: httpx.AsyncClient, running_worker) -> None:
    job_id = await _enqueue(client, "fail_then_succeed", failures=2)
    outcome = (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})).json()
    assert outcome["status"] == "complete" and outcome["result"] == 3
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert [a["try"] for a in view["attempts"]] == [1, 2]
    assert {a["error_type"] for a in view["attempts"]} == {"ConnectionError"}
    assert {a["kind"] for a in view["attempts"]} == {"exception"}
    assert [a["message"] for a in view["attempts"]] == ["try 1 failed", "try 2 failed"]
    assert all("ConnectionError: try" in a["traceback"] for a in view["attempts"])
    assert [a["retry_in_s"] for a in view["attempts"]] == [0.3, 0.6]
    first, second = (datetime.fromisoformat(a["at"]) for a in view["attempts"])
    gap = (second - first).total_seconds()
    assert 0.3 <= gap < 0.3 + 0.2, gap  # try 2 starts 0.3 s after try 1 failed, within a small margin


async def test_exhausted_job_lands_in_dead_letters_with_history(client: httpx.AsyncClient, running_worker) -> None:
    job_id = await _enqueue(client, "fail_then_succeed", failures=99)
    outcome = (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})).json()
    assert outcome["status"] == "failed"
    dead = (await client.get(f"/v1/dead/{job_id}")).json()
    assert dead["function"] == "fail_then_succeed" and dead["kwargs"] == {"failures": 99}
    assert dead["tries"] == 3 and dead["reason"] == "failed 3 of 3 tries"
    assert [a["try"] for a in dead["attempts"]] == [1, 2, 3]
    assert [a["retry_in_s"] for a in dead["attempts"]] == [0.3, 0.6, None]  # the last try gave up
    assert all(a["at"] is not None for a in dead["attempts"])
    assert error_of(dead["error"]) == ("exception", "ConnectionError", "try 3 failed")
    assert dead["error"]["traceback"].rstrip().endswith("ConnectionError: try 3 failed")
    assert datetime.fromisoformat(dead["failed_at"]) >= datetime.fromisoformat(dead["attempts"][-1]["at"])
    page = (await client.get("/v1/dead")).json()
    assert page["total"] == 1 and page["items"][0]["job_id"] == job_id


async def test_fatal_error_is_not_retried(client: httpx.AsyncClient, run_burst_worker) -> None:
    job_id = await _enqueue(client, "fail_fatally", message="bad card")
    worker = await run_burst_worker()
    assert worker.jobs_failed == 1 and worker.jobs_retried == 0
    dead = (await client.get(f"/v1/dead/{job_id}")).json()
    assert dead["tries"] == 1 and dead["reason"] == "fatal error"
    assert error_of(dead["error"]) == ("exception", "Fatal", "bad card")
    assert "Fatal: bad card" in dead["error"]["traceback"]
    assert [(a["try"], a["error_type"], a["retry_in_s"]) for a in dead["attempts"]] == [(1, "Fatal", None)]


async def test_requeued_dead_job_runs_again_with_its_kwargs(client: httpx.AsyncClient, redis, run_burst_worker) -> None:
    job_id = await _enqueue(client, "fail_fatally", message="first")
    await run_burst_worker()
    response = await client.post("/v1/dead/requeue", json={"job_ids": [job_id, "missing"]})
    assert response.json() == {"requeued": [job_id], "not_found": ["missing"], "not_requeued": {}}
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"
    assert (await client.get("/v1/dead")).json()["total"] == 0
    worker = await run_burst_worker()
    assert worker.jobs_failed == 1  # it ran again, with the same kwargs, and died again
    dead = (await client.get(f"/v1/dead/{job_id}")).json()
    assert dead["kwargs"] == {"message": "first"} and dead["tries"] == 1


async def test_requeue_by_function_and_bulk_delete(client: httpx.AsyncClient, redis, run_burst_worker) -> None:
    ids = [await _enqueue(client, "fail_fatally", message=str(n)) for n in range(3)]
    other = await _enqueue(client, "fail_always", message="x")
    await run_burst_worker()
    assert (await client.get("/v1/dead", params={"function": "fail_fatally"})).json()["total"] == 3
    requeued = (await client.post("/v1/dead/requeue", json={"function": "fail_fatally"})).json()["requeued"]
    assert sorted(requeued) == sorted(ids)
    assert await redis.zcard("arq:queue") == 3
    assert (await client.delete("/v1/dead", params={"function": "fail_always"})).json() == {"deleted": 1}
    assert (await client.get(f"/v1/dead/{other}")).status_code == 404
    assert (await client.delete(f"/v1/dead/{other}")).status_code == 404


async def test_dead_letter_endpoints_reject_bad_input(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/dead/requeue", json={})).status_code == 422
    both = await client.post("/v1/dead/requeue", json={"job_ids": ["a"], "function": "f"})
    assert both.status_code == 422
    assert (await client.delete("/v1/dead")).status_code == 422
    assert (await client.get("/v1/dead", params={"limit": 0})).status_code == 422


async def test_dead_letters_are_paged_newest_first(client: httpx.AsyncClient, run_burst_worker) -> None:
    for n in range(5):
        await _enqueue(client, "fail_fatally", message=str(n))
        await run_burst_worker()
    first = (await client.get("/v1/dead", params={"limit": 2})).json()
    second = (await client.get("/v1/dead", params={"limit": 2, "offset": 2})).json()
    assert first["total"] == 5
    messages = [item["error"]["message"] for item in first["items"] + second["items"]]
    assert messages == ["4", "3", "2", "1"]


async def test_unknown_function_on_worker_is_dead_lettered(client: httpx.AsyncClient, redis, run_burst_worker) -> None:
    # Enqueued by a newer API that knows a function this worker does not.
    await redis.enqueue_job("added_in_next_release", _job_id="future", order=1)
    await run_burst_worker()
    dead = (await client.get("/v1/dead/future")).json()
    assert dead["function"] == "added_in_next_release" and dead["kwargs"] == {"order": 1}
    assert dead["reason"] == "function not registered" and dead["requeueable"] is True
    assert (dead["error"]["kind"], dead["error"]["type"]) == ("unknown_function", "UnknownFunction")
    assert "added_in_next_release" in dead["error"]["message"]
    assert await redis.exists(keys.dead_letter("future"))
