"""Priorities and per-function limits through the real claim path: in-process workers on the real Redis here,
three real worker processes in tests/test_flow_processes.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from core import events, keys, priority
from core.job_limits import JobLimitsError, Limits, parse
from core.registry import load_registry
from core.status import JobState, read_job
from core.worker.worker import PlatformWorker
from settings import Settings, SettingsError
from tests.conftest import TEST_JOB_MODULES, api_client, build_worker, make_settings
from tests.support.waiting import wait_for
from tests.test_redis_acl import PASSWORDS, acl_users, denials  # noqa: F401

FLOW_MODULES = [*TEST_JOB_MODULES, "tests.support.flow_jobs"]


@pytest.fixture
def flow_settings(settings: Settings) -> Settings:
    return make_settings(settings.redis_url, job_modules=FLOW_MODULES)


@pytest.fixture
async def flow_client(flow_settings: Settings, redis: ArqRedis) -> Any:
    async with api_client(flow_settings) as http:
        yield http


def ledger_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def burst(settings: Settings, **overrides: Any) -> PlatformWorker:
    worker = build_worker(settings, load_registry(settings), burst=True, poll_delay=0, **overrides)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


async def enqueue(client: httpx.AsyncClient, function: str, **body: Any) -> str:
    response = await client.post("/v1/jobs", json={"function": function, **body})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


# -- limits: parsing ------------------------------------------------------------------------------------------


def test_limits_parse_rates_and_concurrency() -> None:
    assert parse("f", "5/s", None) == Limits(5, 1000, 0)
    assert parse("f", "100/m", 3) == Limits(100, 60_000, 3)
    assert parse("f", "10/30s", None) == Limits(10, 30_000, 0)
    assert parse("f", None, None) is None


@pytest.mark.parametrize(
    ("rate", "concurrency"), [("5 per second", None), ("0/s", None), ("5/0s", None), (None, 0), (None, True)]
)
def test_a_limit_that_cannot_be_enforced_is_refused(rate: str | None, concurrency: Any) -> None:
    with pytest.raises(JobLimitsError, match="of f:"):
        parse("f", rate, concurrency)


def test_a_bad_limit_stops_start_up_with_one_line(settings: Settings) -> None:
    bad = make_settings(settings.redis_url, job_modules=["tests.support.bad_limit_jobs"])
    with pytest.raises(SettingsError) as raised:
        load_registry(bad)
    message = str(raised.value)
    assert "\n" not in message
    assert "rate_limit of too_vague" in message and "'5 per second'" in message


# -- priorities -----------------------------------------------------------------------------------------------


async def test_a_high_job_behind_a_backlog_starts_first(
    flow_client: httpx.AsyncClient, flow_settings: Settings, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")
    jobs = [{"function": "unlimited", "kwargs": {"ledger": ledger, "tag": f"d{i}"}} for i in range(300)]
    assert (await flow_client.post("/v1/jobs/batch", json={"jobs": jobs})).status_code == 202
    high = await enqueue(flow_client, "unlimited", kwargs={"ledger": ledger, "tag": "high"}, priority="high")
    view = (await flow_client.get(f"/v1/jobs/{high}")).json()
    assert view["priority"] == "high" and view["status"] == "queued"

    await burst(flow_settings, max_jobs=1)

    tags = [line[4] for line in ledger_lines(tmp_path / "ledger")]
    assert len(tags) == 301
    assert tags[0] == "high"
    assert sorted(tags[1:]) == sorted(f"d{i}" for i in range(300))  # one batch: one score, any order


async def test_a_low_job_waits_for_idle_workers_and_is_not_starved(
    flow_client: httpx.AsyncClient, flow_settings: Settings, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger")
    low = await enqueue(flow_client, "background", kwargs={"ledger": ledger, "tag": "low"})  # @job(priority="low")
    for i in range(20):
        await enqueue(flow_client, "unlimited", kwargs={"ledger": ledger, "tag": f"d{i}"})
    view = (await flow_client.get(f"/v1/jobs/{low}")).json()
    assert view["priority"] == "low" and view["status"] == "queued"

    await burst(flow_settings, max_jobs=1)

    tags = [line[4] for line in ledger_lines(tmp_path / "ledger")]
    assert tags[-1] == "low"  # after every default job, but it ran
    assert sorted(tags[:-1]) == sorted(f"d{i}" for i in range(20))


async def test_a_low_job_that_waited_its_aging_out_goes_before_newer_default_jobs(
    flow_client: httpx.AsyncClient,
    flow_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis: ArqRedis,
) -> None:
    monkeypatch.setattr(priority, "LOW_AGING_S", 0.3)
    ledger = str(tmp_path / "ledger")
    low = await enqueue(flow_client, "unlimited", kwargs={"ledger": ledger, "tag": "low"}, priority="low")
    aged_at = time.time() + 0.35

    async def clock() -> float:
        return time.time()

    await wait_for(clock, lambda now: now > aged_at, timeout=2)
    for i in range(20):
        await enqueue(flow_client, "unlimited", kwargs={"ledger": ledger, "tag": f"d{i}"})

    await burst(flow_settings, max_jobs=1)

    tags = [line[4] for line in ledger_lines(tmp_path / "ledger")]
    assert tags[0] == "low", tags
    record = await read_job(redis, flow_settings.queue_name, low)
    assert record is not None and record.status is JobState.complete


async def test_a_retried_high_job_keeps_its_priority(
    flow_client: httpx.AsyncClient, flow_settings: Settings, redis: ArqRedis
) -> None:
    job_id = await enqueue(flow_client, "fail_then_succeed", kwargs={"failures": 1}, priority="high")

    await burst(flow_settings, max_burst_jobs=1)

    view = (await flow_client.get(f"/v1/jobs/{job_id}")).json()
    assert view["tries"] == 1 and view["status"] in ("queued", "deferred") and view["priority"] == "high"
    retry_at = await redis.zscore(flow_settings.queue_name, job_id)
    assert retry_at is not None
    assert await redis.zscore(keys.priority(flow_settings.queue_name, "high"), job_id) == retry_at


async def test_priority_is_strict_input(flow_client: httpx.AsyncClient) -> None:
    body = {"function": "unlimited", "kwargs": {"ledger": "/dev/null"}, "priority": "urgent"}
    response = await flow_client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "priority"]
    batch = await flow_client.post("/v1/jobs/batch", json={"jobs": [body]})
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"][:4] == ["body", "jobs", 0, "priority"]


async def test_priority_through_the_batch_and_typed_endpoints(flow_client: httpx.AsyncClient, redis: ArqRedis) -> None:
    body = {"function": "unlimited", "kwargs": {"ledger": "/dev/null"}, "priority": "high"}
    batch = await flow_client.post("/v1/jobs/batch", json={"jobs": [body]})
    assert batch.status_code == 202, batch.text
    (batched,) = [job["job_id"] for job in batch.json()["accepted"]]
    typed = await flow_client.post("/v1/functions/unlimited/jobs", json={"ledger": "/dev/null", "priority": "low"})
    assert typed.status_code == 202, typed.text
    typed_id = typed.json()["job_id"]

    assert (await flow_client.get(f"/v1/jobs/{batched}")).json()["priority"] == "high"
    low_view = (await flow_client.get(f"/v1/jobs/{typed_id}")).json()
    assert low_view["priority"] == "low" and low_view["status"] == "queued"
    assert await redis.zscore(keys.priority("arq:queue", "high"), batched) is not None
    assert await redis.zscore(keys.priority("arq:queue", "low"), typed_id) is not None


async def test_a_default_job_leaves_arqs_queue_as_arq_writes_it(
    flow_client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    job_id = await enqueue(flow_client, "unlimited", kwargs={"ledger": "/dev/null"})
    payload = await redis.get(keys.job(job_id))
    assert payload is not None and payload.endswith(b"}") and b'"p":' not in payload
    assert await redis.keys(f"{keys.PRIORITY_PREFIX}*") == []


# -- limits: in one worker ------------------------------------------------------------------------------------


async def test_jobs_over_a_limit_wait_spend_no_try_and_others_flow_past(
    flow_client: httpx.AsyncClient, flow_settings: Settings, tmp_path: Path, redis: ArqRedis
) -> None:
    ledger = tmp_path / "ledger"
    paired = [await enqueue(flow_client, "paired", kwargs={"ledger": str(ledger), "hold_s": 0.6}) for _ in range(4)]
    for i in range(5):
        await enqueue(flow_client, "unlimited", kwargs={"ledger": str(ledger), "tag": f"u{i}"})
    worker = build_worker(flow_settings, load_registry(flow_settings), max_jobs=10)
    task = asyncio.create_task(worker.async_run())
    try:
        lines = await wait_for(
            lambda: _ledger(ledger), lambda got: sum(1 for line in got if line[3] == "unlimited") == 5, timeout=5
        )
        running = [line for line in lines if line[3] == "paired"]
        assert len(running) == 2  # the other functions' jobs went past the two paired ones waiting
        waiting = [job_id for job_id in paired if job_id not in {line[4] for line in running}]
        for job_id in waiting:
            view = (await flow_client.get(f"/v1/jobs/{job_id}")).json()
            assert view["status"] == "queued" and view["tries"] == 0
            assert view["waiting_on"] == "concurrency"
        done = await wait_for(
            lambda: _ledger(ledger), lambda got: sum(1 for line in got if line[0] == "end") == 4, timeout=5
        )
        assert max_overlap(done) <= 2
        for job_id in paired:
            view = await wait_for(
                lambda job_id=job_id: _view(flow_client, job_id), lambda v: v["status"] == "complete", timeout=5
            )
            assert view["tries"] == 1 and view["waiting_on"] is None
        assert await redis.zcard(keys.job_slots(flow_settings.queue_name, "paired")) == 0  # every slot given back
        for job_id in waiting:  # passed over many times, published once, then started
            names = [event.event for event in await job_events(redis, job_id)]
            assert names[:3] == ["queued", "limited", "started"] and names.count("limited") == 1
        limited = [e for e in await job_events(redis, waiting[0]) if e.event == "limited"]
        assert limited[0].data == {"on": "concurrency"}
    finally:
        worker.handle_sig(2)
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


async def job_events(redis: ArqRedis, job_id: str) -> list[events.Event]:
    entries = await redis.xrange(events.job_stream(job_id))
    return [event for entry_id, fields in entries if (event := events.parse(entry_id, fields)) is not None]


async def _ledger(path: Path) -> list[list[str]]:
    return ledger_lines(path)


async def _view(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    view: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
    return view


def max_overlap(lines: list[list[str]]) -> int:
    """The most `paired` runs at once, from the ledger's start and end lines."""
    events = sorted((float(line[1]), 1 if line[0] == "start" else -1) for line in lines if line[3] == "paired")
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        running += step
        most = max(most, running)
    return most


async def test_a_function_without_limits_leaves_no_limit_keys(
    flow_client: httpx.AsyncClient, settings: Settings, redis: ArqRedis, tmp_path: Path
) -> None:
    await enqueue(flow_client, "unlimited", kwargs={"ledger": str(tmp_path / "l")})
    await burst(settings)  # the test settings' functions have no limits
    assert await redis.exists(keys.job_limits(settings.queue_name)) == 0
    assert await redis.keys(f"{keys.PREFIX}job-*") == []


@pytest.mark.usefixtures("acl_users")
async def test_limits_and_priorities_run_as_the_documented_acl_users(
    settings: Settings, redis: ArqRedis, tmp_path: Path
) -> None:
    as_api = make_settings(
        settings.redis_url, job_modules=FLOW_MODULES, redis_username="platform-api", redis_password=PASSWORDS["api"]
    )
    as_worker = make_settings(
        settings.redis_url,
        job_modules=FLOW_MODULES,
        redis_username="platform-worker",
        redis_password=PASSWORDS["worker"],
    )
    ledger = str(tmp_path / "ledger")
    async with api_client(as_api) as client:
        ids = [await enqueue(client, "paired", kwargs={"ledger": ledger, "hold_s": 0}) for _ in range(3)]
        ids.append(await enqueue(client, "rated", kwargs={"ledger": ledger}))
        ids.append(await enqueue(client, "unlimited", kwargs={"ledger": ledger}, priority="high"))
        ids.append(await enqueue(client, "unlimited", kwargs={"ledger": ledger}, priority="low"))
        await burst(as_worker)
        for job_id in ids:
            assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "complete"
    assert await denials(redis) == []
