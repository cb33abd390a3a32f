"""`GET /v1/jobs`: newest first, filtered by status and function, paged by cursor, with counts per status and per
function, from indexes the scripts keep (trimmed as results expire); `GET /v1/queues` stats; the cluster-wide job
metrics after a mix of outcomes."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from core import events, job_index, job_metrics
from core.worker import heartbeat
from core.workers import new_worker_info
from tests.support.waiting import wait_for


async def post(client: httpx.AsyncClient, function: str, **body: Any) -> str:
    response = await client.post("/v1/jobs", json={"function": function, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def mixed_jobs(client: httpx.AsyncClient, run_burst_worker) -> dict[str, str]:
    """Jobs that end complete, dead and aborted, then one queued and one deferred that stay."""
    ids = {
        "complete": await post(client, "echo", kwargs={"value": 1}),
        "complete2": await post(client, "echo", kwargs={"value": 2}),
        "dead": await post(client, "fail_always", kwargs={"message": "no"}),
    }
    aborted = await post(client, "echo", kwargs={"value": 3}, defer_by=60)
    assert (await client.post(f"/v1/jobs/{aborted}/abort")).status_code == 200
    ids["aborted"] = aborted
    await run_burst_worker()
    ids["queued"] = await post(client, "sleep_for", kwargs={"seconds": 1})
    ids["deferred"] = await post(client, "sleep_for", kwargs={"seconds": 1}, defer_by=60)
    return ids


async def test_search_lists_newest_first_with_status_and_counts(client: httpx.AsyncClient, run_burst_worker) -> None:
    ids = await mixed_jobs(client, run_burst_worker)
    page = await search(client)
    listed = [(item["job_id"], item["status"]) for item in page["items"]]
    # A deferred job sorts by when it is due (in the future), then the latest changes first.
    assert listed[0] == (ids["deferred"], "deferred")
    assert listed[1] == (ids["queued"], "queued")
    assert {job_id: status for job_id, status in listed} == {
        ids["complete"]: "complete",
        ids["complete2"]: "complete",
        ids["dead"]: "dead",
        ids["aborted"]: "aborted",
        ids["queued"]: "queued",
        ids["deferred"]: "deferred",
    }
    assert page["next_cursor"] is None
    assert page["counts"]["status"] == {
        "deferred": 1, "queued": 1, "in_progress": 0, "complete": 2, "failed": 0, "dead": 1, "aborted": 1,
    }  # fmt: skip
    assert page["counts"]["function"] == {"echo": 3, "fail_always": 1, "sleep_for": 2}

    item = next(item for item in page["items"] if item["job_id"] == ids["complete"])
    assert item["function"] == "echo" and set(item) == {
        "job_id", "function", "status", "enqueued_at", "scheduled_at", "started_at", "finished_at",
    }  # fmt: skip
    job = (await client.get(f"/v1/jobs/{ids['complete']}")).json()
    assert item["enqueued_at"] == job["enqueued_at"]
    # The index moves as the result is written (the two times are taken a moment apart).
    written_apart = datetime.fromisoformat(item["finished_at"]) - datetime.fromisoformat(job["finished_at"])
    assert abs(written_apart.total_seconds()) < 1
    assert "kwargs" not in item and "result" not in item


async def test_search_filters_by_status_and_function(client: httpx.AsyncClient, run_burst_worker) -> None:
    ids = await mixed_jobs(client, run_burst_worker)

    async def listed(**params: Any) -> set[str]:
        return {item["job_id"] for item in (await search(client, **params))["items"]}

    assert await listed(status="complete") == {ids["complete"], ids["complete2"]}
    assert await listed(status="dead") == {ids["dead"]}
    assert await listed(status="aborted") == {ids["aborted"]}
    assert await listed(status="queued") == {ids["queued"]}
    assert await listed(status="deferred") == {ids["deferred"]}
    assert await listed(status="failed") == set()
    assert await listed(function="echo") == {ids["complete"], ids["complete2"], ids["aborted"]}
    assert await listed(function="echo", status="aborted") == {ids["aborted"]}
    assert await listed(function="sleep_for", status="complete") == set()
    assert await listed(function="no_such_function") == set()


async def test_search_shows_a_running_job_in_progress(client: httpx.AsyncClient, running_worker) -> None:
    job_id = await post(client, "sleep_for", kwargs={"seconds": 30})
    page = await wait_for(
        lambda: search(client, status="in_progress"),
        lambda page: page["counts"]["status"]["in_progress"] == 1,  # counts are read just before the page
    )
    assert [item["job_id"] for item in page["items"]] == [job_id]
    assert page["items"][0]["started_at"] is not None
    assert (await client.post(f"/v1/jobs/{job_id}/abort")).status_code in (200, 202)
    await wait_for(lambda: search(client, status="aborted"), lambda page: len(page["items"]) == 1)
    assert (await search(client, status="in_progress"))["items"] == []


async def test_paging_by_cursor_visits_every_job_once_newest_first(client: httpx.AsyncClient) -> None:
    body = {"jobs": [{"function": "echo", "kwargs": {"value": n}, "job_id": f"p{n:02}"} for n in range(23)]}
    assert (await client.post("/v1/jobs/batch", json=body)).status_code == 202  # one millisecond: ties by id
    later = await post(client, "echo", kwargs={"value": 99}, job_id="p-later")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await search(client, limit=5, **({"cursor": cursor} if cursor else {}))
        seen += [item["job_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen[0] == later
    assert seen[1:] == [f"p{n:02}" for n in reversed(range(23))]
    assert len(seen) == len(set(seen)) == 24


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"limit": "many"}, ["query", "limit"]),
        ({"status": "lost"}, ["query", "status"]),
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"cursor": "%%%"}, ["query", "cursor"]),
    ],
)
async def test_bad_paging_is_a_422_in_the_error_shape(
    client: httpx.AsyncClient, params: dict[str, Any], loc: list[str]
) -> None:
    response = await client.get("/v1/jobs", params=params)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == loc and set(problem) == {"loc", "msg", "type"}


async def test_the_index_forgets_jobs_whose_records_expired(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    kept = await post(client, "echo", kwargs={"value": 1})
    gone = await post(client, "echo", kwargs={"value": 2})
    await run_burst_worker()
    await redis.delete(events.job_stream(gone))  # as when its records expire
    assert [item["job_id"] for item in (await search(client))["items"]] == [kept]
    assert await redis.zscore(job_index.key("echo"), gone) is None  # dropped on the way


async def test_the_heartbeat_trims_ended_jobs_as_their_results_expire(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    old = await post(client, "echo", kwargs={"value": 1})
    await run_burst_worker()
    finished = int(await redis.zscore(job_index.key("echo"), old) or 0)
    assert finished - job_index.score("complete", 0) > time.time() * 1000 - 60_000
    info = new_worker_info("arq:queue")
    await heartbeat.beat(redis, info, 1, [("echo", 60_000, None)])
    assert await redis.zscore(job_index.key("echo"), old) is not None  # its result is still kept
    await redis.zadd(job_index.key("echo"), {old: finished - 61_000})  # as if it ended 61 s earlier
    await heartbeat.beat(redis, info, 1, [("echo", 60_000, None)])
    assert await redis.zscore(job_index.key("echo"), old) is None


async def test_the_index_is_bounded(redis: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_index, "INDEX_MAX", 3)
    now_ms = int(time.time() * 1000)
    await redis.zadd(job_index.key("echo"), {f"j{n}": job_index.score("failed", now_ms + n) for n in range(10)})
    others = {"waiting": job_index.score("waiting", now_ms), "done": job_index.score("complete", now_ms)}
    await redis.zadd(job_index.key("echo"), others)
    await heartbeat.beat(redis, new_worker_info("arq:queue"), 1, [("echo", None, None)])
    assert await redis.zrange(job_index.key("echo"), 0, -1) == [b"waiting", b"done", b"j7", b"j8", b"j9"]


async def test_queues_show_the_oldest_waiting_job_and_throughput(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    for value in range(3):
        await post(client, "echo", kwargs={"value": value})
    await run_burst_worker()
    waiting_since = time.time()
    await post(client, "echo", kwargs={"value": 9})
    queue = await _queue(client)
    assert queue["finished_last_minute"] == 3 and queue["finished_last_hour"] == 3
    assert queue["queued"] == 1
    assert 0 <= queue["oldest_waiting_age_s"] <= time.time() - waiting_since + 0.5
    queue = await wait_for(lambda: _queue(client), lambda q: q["oldest_waiting_age_s"] >= 0.2)
    assert queue["oldest_waiting_age_s"] <= time.time() - waiting_since + 0.5


async def _queue(client: httpx.AsyncClient) -> dict[str, Any]:
    (queue,) = (await client.get("/v1/queues")).json()
    return dict(queue)


async def test_an_empty_queue_has_no_oldest_waiting_job(client: httpx.AsyncClient) -> None:
    queue = await _queue(client)
    assert queue["oldest_waiting_age_s"] is None
    assert queue["finished_last_minute"] == 0 and queue["finished_last_hour"] == 0


async def test_job_metrics_after_a_mix_of_outcomes(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    ids = await mixed_jobs(client, run_burst_worker)
    assert (await client.post(f"/v1/jobs/{ids['deferred']}/abort")).status_code == 200
    await post(client, "fail_then_succeed", kwargs={"failures": 1})
    await run_burst_worker()
    metrics = await job_metrics.read(redis)
    counts = {"|".join(key): value for key, value in metrics.counts.items()}
    assert counts == {
        "enqueued|echo": 3,
        "enqueued|fail_always": 1,
        "enqueued|sleep_for": 2,
        "enqueued|fail_then_succeed": 1,
        "finished|echo|complete": 2,
        "finished|echo|aborted": 1,
        "finished|fail_always|dead": 1,
        "finished|sleep_for|complete": 1,
        "finished|sleep_for|aborted": 1,
        "finished|fail_then_succeed|complete": 1,
        "retried|fail_then_succeed": 1,
    }
    # Every try that ran is timed; every claim's wait since the job came due is observed.
    assert metrics.histograms[("duration", "echo")].count == 2
    assert metrics.histograms[("duration", "fail_then_succeed")].count == 2
    assert metrics.histograms[("queue_wait", "echo")].count == 2
    assert metrics.histograms[("queue_wait", "fail_then_succeed")].count == 2
    sleep = metrics.histograms[("duration", "sleep_for")]
    assert sleep.count == 1 and 1.0 <= sleep.sum < 2.0
    assert sleep.buckets[job_metrics.bucket_index(sleep.sum)] == 1
