"""Nothing a stranger writes into Redis is ever unpickled: not a job payload by the worker, not a
result by the API. Each payload would create a marker file the moment anyone unpickled it."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import httpx
from arq.connections import ArqRedis

from core import keys
from settings import Settings


class TouchOnUnpickle:
    """Unpickling this object creates `marker`: the stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def pickled_job(marker: Path) -> bytes:
    """What arq's default (pickle) serializer would store for `echo(value=...)`."""
    now_ms = int(time.time() * 1000)
    return pickle.dumps({"t": 1, "f": "echo", "a": (), "k": {"value": TouchOnUnpickle(marker)}, "et": now_ms})


def pickled_result(marker: Path, job_id: str) -> bytes:
    now_ms = int(time.time() * 1000)
    return pickle.dumps(
        {
            "t": 1,
            "f": "echo",
            "a": (),
            "k": {},
            "et": now_ms,
            "s": True,
            "r": TouchOnUnpickle(marker),
            "st": now_ms,
            "ft": now_ms,
            "q": "arq:queue",
            "id": job_id,
        }
    )


def test_payloads_would_create_the_marker_if_unpickled(tmp_path: Path) -> None:
    # Guards the tests below: they prove something only if unpickling these payloads has an effect.
    job_marker, result_marker = tmp_path / "job", tmp_path / "result"
    pickle.loads(pickled_job(job_marker))
    pickle.loads(pickled_result(result_marker, "x"))
    assert job_marker.exists() and result_marker.exists()


async def test_worker_never_unpickles_a_job_payload(
    client: httpx.AsyncClient, redis: ArqRedis, settings: Settings, run_burst_worker, tmp_path: Path
) -> None:
    marker = tmp_path / "job-unpickled"
    job_id = "pickled-job"
    await redis.set(keys.job(job_id), pickled_job(marker))
    await redis.zadd(settings.queue_name, {job_id: int(time.time() * 1000)})

    worker = await run_burst_worker()

    assert not marker.exists()
    assert worker.jobs_complete == 0
    assert worker.jobs_failed == 1
    response = await client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    view = response.json()
    assert view["status"] == "failed"
    assert (view["error"]["kind"], view["error"]["type"]) == ("unreadable_payload", "UnreadablePayload")
    assert not marker.exists()
    dead = (await client.get(f"/v1/dead/{job_id}")).json()
    assert dead["reason"] == "unreadable payload" and dead["requeueable"] is False
    requeue = (await client.post("/v1/dead/requeue", json={"job_ids": [job_id]})).json()
    assert requeue == {"requeued": [], "not_found": [], "not_requeued": {job_id: "not_requeueable"}}
    assert await redis.zscore(settings.queue_name, job_id) is None
    assert not marker.exists()


async def test_api_never_unpickles_a_queued_job_payload(
    client: httpx.AsyncClient, redis: ArqRedis, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "job-unpickled"
    job_id = "pickled-queued-job"
    await redis.set(keys.job(job_id), pickled_job(marker))
    await redis.zadd(settings.queue_name, {job_id: int(time.time() * 1000)})

    view = await client.get(f"/v1/jobs/{job_id}")
    assert view.status_code == 200
    assert view.json()["status"] == "queued"
    aborted = await client.post(f"/v1/jobs/{job_id}/abort")
    assert aborted.status_code == 200
    assert aborted.json()["status"] == "aborted"
    assert not marker.exists()


async def test_api_never_unpickles_a_stored_result(client: httpx.AsyncClient, redis: ArqRedis, tmp_path: Path) -> None:
    marker = tmp_path / "result-unpickled"
    job_id = "pickled-result"
    await redis.set(keys.result(job_id), pickled_result(marker, job_id))

    view = await client.get(f"/v1/jobs/{job_id}")
    assert view.status_code == 200
    assert view.json()["status"] == "failed"
    error = view.json()["error"]
    outcome = await client.get(f"/v1/jobs/{job_id}/result")
    assert outcome.status_code == 200
    assert outcome.json()["status"] == "failed"
    assert outcome.json()["finished"] is True
    assert (await client.post(f"/v1/jobs/{job_id}/abort")).status_code == 409
    assert not marker.exists()
    # The platform's words for a stored record it cannot read: kind unreadable_payload, type UnreadablePayload.
    assert (error["kind"], error["type"]) == ("unreadable_payload", "UnreadablePayload")


async def test_api_never_unpickles_stored_progress(
    client: httpx.AsyncClient, redis: ArqRedis, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "progress-unpickled"
    job_id = "pickled-progress"
    await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}, "job_id": job_id})
    await redis.set(keys.progress(job_id), pickle.dumps({"done": TouchOnUnpickle(marker)}))

    view = await client.get(f"/v1/jobs/{job_id}")
    assert view.status_code == 200
    assert view.json()["status"] == "queued"
    assert view.json()["progress"] is None
    assert not marker.exists()
