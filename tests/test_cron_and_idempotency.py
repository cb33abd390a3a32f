"""Missed cron ticks are visible; `once` keeps an effect from repeating when a job runs again."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from arq.connections import ArqRedis

from core import cron_runs, keys
from core.context import JobContext
from core.idempotency import once
from core.registry import Registry
from core.worker_config import arq_cron_job
from settings import Settings
from tests.conftest import build_worker
from tests.support.waiting import wait_for

# arq puts every cron tick at .123456 s past its second (next_cron's default); a tick id carries its unix ms.
TICK_OFFSET_MS = 123
# The API counts a tick as missed once it is this far in the past (service/routes/cron.py MISSED_AFTER).
MISSED_AFTER_S = 5


def tick_ms(second: int) -> int:
    return second * 1000 + TICK_OFFSET_MS


async def record_ran_ticks(redis: ArqRedis, name: str, seconds: Iterable[int]) -> None:
    """What a worker records when it runs these ticks of cron `name`."""
    for second in seconds:
        await cron_runs.record_start(redis, name, keys.cron_tick_job_id(name, tick_ms(second)))
        await cron_runs.record_end(redis, name, "complete", 0.01, None)


def every_second(registry: Registry) -> None:
    spec = registry.crons["record_heartbeat"]
    schedule: dict[str, Any] = {**spec.schedule, "second": None, "minute": None}
    registry.crons["record_heartbeat"] = dataclasses.replace(spec, schedule=schedule)


def missed_seconds(ran: set[int], answered_at: float) -> list[int]:
    """The rule, for an every-second cron: each tick from the oldest of the last 200 ran ticks until
    MISSED_AFTER before the answer that did not run."""
    kept = sorted(ran)[-cron_runs.TICKS_KEPT :]
    cutoff_ms = (int(answered_at) - MISSED_AFTER_S) * 1000  # the API reads `now` to the second
    return [s for s in range(kept[0], int(answered_at) + 1) if s not in ran and tick_ms(s) <= cutoff_ms]


async def heartbeat_view(client: httpx.AsyncClient) -> tuple[dict[str, Any], float, float, float]:
    """The record_heartbeat entry of GET /v1/cron, the times just before and after it, and the seconds taken."""
    before, started = time.time(), time.perf_counter()
    crons = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    elapsed, after = time.perf_counter() - started, time.time()
    return crons["record_heartbeat"], before, after, elapsed


def assert_missed(view: dict[str, Any], ran: set[int], before: float, after: float) -> None:
    """missed_runs and last_missed_at are those of the rule, read at some moment between before and after."""
    answers = []
    for at in {before, after}:
        missed = missed_seconds(ran, at)
        latest = datetime.fromtimestamp(missed[-1], UTC) if missed else None  # shown to the second
        answers.append((len(missed), latest))
    last_missed = datetime.fromisoformat(view["last_missed_at"]) if view["last_missed_at"] else None
    assert (view["missed_runs"], last_missed) in answers


async def test_tick_missed_while_no_worker_ran_is_visible(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    # The heartbeat (every minute, on the minute) last ran for the tick at minute 0 of three hours ago.
    hours_ago = int((time.time() // 3600 - 3) * 3600)
    await record_ran_ticks(redis, "record_heartbeat", [hours_ago])
    before = time.time()
    crons = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    after = time.time()
    heartbeat = crons["record_heartbeat"]
    assert heartbeat["last_run"]["status"] == "complete"
    assert heartbeat["last_run"]["job_id"] == keys.cron_tick_job_id("record_heartbeat", tick_ms(hours_ago))
    # Every minute since (over three hours' worth), up to MISSED_AFTER ago.
    due = [int((int(at) - MISSED_AFTER_S - TICK_OFFSET_MS / 1000 - hours_ago) // 60) for at in (before, after)]
    assert heartbeat["missed_runs"] in due
    assert heartbeat["missed_runs"] >= 3 * 60 - 1
    last_missed = datetime.fromisoformat(heartbeat["last_missed_at"])
    assert (
        last_missed.second == 0 and 0 < time.time() - last_missed.timestamp() <= 60 + MISSED_AFTER_S + 1
    )  # now is read to the second
    assert crons["prune_stale_records"]["missed_runs"] == 0  # never ran: nothing to compare with
    assert crons["prune_stale_records"]["last_missed_at"] is None


async def test_once_runs_an_effect_once_per_key(redis: ArqRedis) -> None:
    calls: list[int] = []

    async def charge() -> dict[str, int]:
        calls.append(1)
        return {"charged": 42}

    ctx: JobContext = {"redis": redis, "job_id": "order-1"}
    first = await once(ctx, "charge:order-1", charge)
    again = await once(ctx, "charge:order-1", charge)
    other = await once(ctx, "charge:order-2", charge)
    assert first == again == other == {"charged": 42}
    assert len(calls) == 2


async def test_missed_ticks_are_exactly_the_gaps_among_the_last_ticks_run_and_every_tick_since(
    client: httpx.AsyncClient, redis: ArqRedis, registry: Registry
) -> None:
    every_second(registry)
    base = int(time.time()) - 260
    # 231 ticks, 6 of them never ran; ran: 225, of which the oldest 25 (and the gaps at 5 and 6) fall outside
    # the window of the last 200 recorded. Nothing ran in the last 30 s.
    gaps = {5, 6, 100, 101, 102, 200}
    ran = {base + k for k in range(231) if k not in gaps}
    await record_ran_ticks(redis, "record_heartbeat", sorted(ran))
    assert await redis.zcard(keys.cron_ticks("record_heartbeat")) == cron_runs.TICKS_KEPT

    view, before, after, elapsed = await heartbeat_view(client)

    # The gaps 100, 101, 102 and 200, and every tick of the last 30 s up to MISSED_AFTER ago.
    assert view["missed_runs"] - 4 in {len(range(base + 231, int(at) - MISSED_AFTER_S)) for at in (before, after)}
    assert_missed(view, ran, before, after)
    assert elapsed < 1.0


async def test_missed_ticks_after_a_long_stop_are_all_counted_up_to_the_latest(
    client: httpx.AsyncClient, redis: ArqRedis, registry: Registry
) -> None:
    # An every-second cron that ran 200 ticks in a row, then no worker ran for ten minutes.
    every_second(registry)
    last = int(time.time()) - 600
    ran = set(range(last - 199, last + 1))
    await record_ran_ticks(redis, "record_heartbeat", sorted(ran))

    view, before, after, elapsed = await heartbeat_view(client)

    assert 590 <= view["missed_runs"] <= 600  # every tick since the last run, up to MISSED_AFTER ago
    assert_missed(view, ran, before, after)
    last_missed = datetime.fromisoformat(view["last_missed_at"])
    assert MISSED_AFTER_S <= time.time() - last_missed.timestamp() < MISSED_AFTER_S + 3  # the latest tick
    assert elapsed < 1.0


async def test_missed_ticks_after_days_without_a_worker_answer_quickly(
    client: httpx.AsyncClient, redis: ArqRedis, registry: Registry
) -> None:
    # A once-a-second cron whose last run was three days ago: 259,200 ticks missed since.
    every_second(registry)
    last = int(time.time() - 3 * 86_400)
    ran = set(range(last - 199, last + 1))
    await record_ran_ticks(redis, "record_heartbeat", sorted(ran))

    view, before, after, elapsed = await heartbeat_view(client)

    assert elapsed < 1.0
    last_missed = datetime.fromisoformat(view["last_missed_at"])
    assert MISSED_AFTER_S <= time.time() - last_missed.timestamp() < MISSED_AFTER_S + 3  # the latest, not the 200th
    assert 3 * 86_400 - 10 <= view["missed_runs"] <= 3 * 86_400
    assert_missed(view, ran, before, after)


async def test_cron_tick_cut_short_by_a_stopping_worker_is_not_shown_as_failed(
    client: httpx.AsyncClient, settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    async def slow_tick(ctx: JobContext) -> None:
        """A cron tick that outlasts its worker."""
        await asyncio.sleep(30)

    registry.cron(second=0, minute=0, hour=0, day=1, month=1)(slow_tick)
    worker = build_worker(settings, registry, cron_jobs=[arq_cron_job(registry.crons["slow_tick"], settings)])
    task = asyncio.create_task(worker.async_run())
    tick_ms = int(time.time() // 60 * 60_000) + 123
    job_id = keys.cron_tick_job_id("slow_tick", tick_ms)
    await redis.enqueue_job("slow_tick", _job_id=job_id)
    try:
        await wait_for(lambda: client.get(f"/v1/jobs/{job_id}"), lambda r: r.json()["status"] == "in_progress")
    finally:
        worker.handle_sig(2)
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"  # requeued, runs again
    crons = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    last_run = crons["slow_tick"]["last_run"]  # None when the stop came before the tick's code began
    assert last_run is None or (last_run["job_id"], last_run["status"]) == (job_id, "in_progress"), last_run
