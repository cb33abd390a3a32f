"""Unique jobs through real workers and Redis: a duplicate answers with the existing job (REST and Python), the
lock is released when the job ends (a new one is then accepted), a lock whose job is gone holds nothing, and 20
concurrent enqueues of one key make one job."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from core import keys
from core.context import JobContext
from core.enqueue import JobRequest, enqueue, enqueue_many
from core.registry import Registry, job
from service.handle import InFlight, Jobs
from settings import Settings
from tests.conftest import TEST_JOB_MODULES, make_settings
from tests.support.workflow_jobs import LEDGER, build_report

MODULES = [*TEST_JOB_MODULES, "tests.support.workflow_jobs"]


@pytest.fixture
def settings(redis_server: Any) -> Settings:
    return make_settings(redis_server.url, job_modules=MODULES)


@pytest.fixture(autouse=True)
def clean_ledger() -> None:
    LEDGER.clear()


def report(report_id: int, note: str = "") -> dict[str, Any]:
    return {"function": "build_report", "kwargs": {"report_id": report_id, "note": note}}


async def test_a_duplicate_answers_with_the_existing_job(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    first = await client.post("/v1/jobs", json=report(1, "first"))
    assert first.status_code == 202, first.text
    assert "existing" not in first.json()  # shown only when true
    job_id = first.json()["job_id"]

    again = await client.post("/v1/jobs", json=report(1, "second"))  # the key is report_id alone
    assert again.status_code == 200, again.text
    assert again.json()["existing"] is True
    assert again.json()["job_id"] == job_id and again.json()["status"] == "queued"
    assert again.json()["enqueued_at"] == first.json()["enqueued_at"]
    assert "Location" not in again.headers

    typed = await client.post("/v1/functions/build_report/jobs", json={"report_id": 1})
    assert typed.status_code == 200 and typed.json()["job_id"] == job_id and typed.json()["existing"] is True
    batch = await client.post("/v1/jobs/batch", json={"jobs": [report(1), report(2), report(2)]})
    assert batch.status_code == 202, batch.text
    accepted = batch.json()["accepted"]
    assert [item.get("existing", False) for item in accepted] == [True, False, True]
    assert accepted[0]["job_id"] == job_id and accepted[2]["job_id"] == accepted[1]["job_id"]

    other = await client.post("/v1/jobs", json=report(3))
    assert other.status_code == 202 and other.json()["job_id"] != job_id
    assert await redis.zcard("arq:queue") == 3  # reports 1, 2 and 3: nothing else was written

    view = (await client.get(f"/v1/jobs/{job_id}")).json()  # the job shows the key it holds while queued
    assert view["unique_key"].startswith(keys.unique("build_report", ""))
    assert await redis.get(view["unique_key"]) == job_id.encode()  # the lock it names is this job's


async def test_python_gets_the_existing_job(
    settings: Settings, registry: Registry, redis: ArqRedis, run_burst_worker
) -> None:
    jobs = Jobs(redis, registry, settings, InFlight())
    job_id = await jobs.enqueue(build_report, report_id=5)
    assert await jobs.enqueue(build_report, report_id=5, note="again") == job_id
    duplicate = await enqueue(redis, registry.get("build_report"), {"report_id": 5})
    assert duplicate.existing and duplicate.job_id == job_id
    many = await enqueue_many(redis, [JobRequest(registry.get("build_report"), {"report_id": 5})])
    assert many[0].job_id == job_id and many[0].existing  # type: ignore[union-attr]

    await run_burst_worker()

    assert LEDGER == [("report", 5)]  # one report ran


async def test_the_lock_is_released_when_the_job_ends(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    first = (await client.post("/v1/jobs", json=report(7))).json()["job_id"]
    lock = keys.unique("build_report", "*")
    (lock_key,) = await redis.keys(lock)
    assert await redis.get(lock_key) == first.encode()
    lock_ttl, job_ttl = await redis.pttl(lock_key), await redis.pttl(keys.job(first))
    assert lock_ttl > 0 and abs(lock_ttl - job_ttl) < 1000  # tied to the job's lifetime (read a moment apart)

    await run_burst_worker()

    assert await redis.keys(lock) == []  # released by the finish script
    second = await client.post("/v1/jobs", json=report(7))
    assert second.status_code == 202 and second.json()["job_id"] != first

    aborted = await client.post(f"/v1/jobs/{second.json()['job_id']}/abort")
    assert aborted.status_code == 200, aborted.text
    assert await redis.keys(lock) == []  # released by the abort script
    third = await client.post("/v1/jobs", json=report(7))
    assert third.status_code == 202 and "existing" not in third.json()


async def test_a_lock_whose_job_is_gone_holds_nothing(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    first = (await client.post("/v1/jobs", json=report(8))).json()["job_id"]
    await redis.delete(keys.job(first))  # its payload expired (or was removed) and nobody holds it
    again = await client.post("/v1/jobs", json=report(8))
    assert again.status_code == 202, again.text
    assert again.json()["job_id"] != first


async def test_twenty_concurrent_enqueues_make_one_job(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    answers = await asyncio.gather(*(client.post("/v1/jobs", json=report(9, f"n{i}")) for i in range(20)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 19 + [202]
    assert len({answer.json()["job_id"] for answer in answers}) == 1
    assert await redis.zcard("arq:queue") == 1


async def test_a_job_without_unique_makes_no_lock(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    job_id = (await client.post("/v1/jobs", json={"function": "fetch_total", "kwargs": {"order_id": 1}})).json()[
        "job_id"
    ]
    again = await client.post("/v1/jobs", json={"function": "fetch_total", "kwargs": {"order_id": 1}})
    assert again.status_code == 202 and again.json()["job_id"] != job_id
    assert await redis.keys(keys.UNIQUE_PREFIX + "*") == []
    assert await redis.keys(keys.CHAIN_PREFIX + "*") == []
    payload = await redis.get(keys.job(job_id))
    assert b'"u":' not in payload and b'"c":' not in payload


def test_unique_names_a_parameter() -> None:
    with pytest.raises(TypeError, match="not among its parameters"):

        @job(unique=("missing",))
        async def bad(ctx: JobContext, report_id: int) -> None: ...
