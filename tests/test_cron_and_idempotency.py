"""Missed cron ticks are visible; `once` keeps an effect from repeating when a job runs again."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.connections import ArqRedis

from core import cron_runs
from core.context import JobContext
from core.idempotency import once
from core.registry import registry
from service.routes.cron import MAX_MISSED_COUNTED


async def test_tick_missed_while_no_worker_ran_is_visible(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    # The heartbeat's last run was for the tick at minute 0 of three hours ago; nothing ran since.
    hours_ago = int((time.time() // 3600 - 3) * 3600 * 1000) + 123
    await cron_runs.record_start(redis, "record_heartbeat", f"record_heartbeat:{hours_ago}")
    await cron_runs.record_end(redis, "record_heartbeat", "complete", 0.01, None)
    crons = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    heartbeat = crons["record_heartbeat"]
    assert heartbeat["last_run"]["status"] == "complete"
    assert heartbeat["missed_runs"] >= 3 * 60 - 1  # every minute for three hours
    assert heartbeat["last_missed_at"] is not None
    assert crons["prune_stale_records"]["missed_runs"] == 0  # never ran: nothing to compare with


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


async def test_missed_ticks_are_counted_up_to_a_cap_and_answer_quickly(
    client: httpx.AsyncClient, redis: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A once-a-second heartbeat whose last run was three days ago: 259,200 missed ticks, counted to 1,000.
    days_ago = int((time.time() - 3 * 86_400) * 1000)
    await cron_runs.record_start(redis, "record_heartbeat", f"record_heartbeat:{days_ago}")
    await cron_runs.record_end(redis, "record_heartbeat", "complete", 0.01, None)
    spec = registry.crons["record_heartbeat"]
    every_second = dataclasses.replace(spec, schedule={**spec.schedule, "second": None, "minute": None})
    monkeypatch.setitem(registry.crons, "record_heartbeat", every_second)
    started = time.perf_counter()
    crons = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    elapsed = time.perf_counter() - started
    heartbeat = crons["record_heartbeat"]
    assert heartbeat["missed_runs"] == MAX_MISSED_COUNTED == 1000
    last_missed = datetime.fromisoformat(heartbeat["last_missed_at"])
    assert timedelta(0) < datetime.now(UTC) - last_missed < timedelta(seconds=10)  # the latest, not the 1000th
    assert elapsed < 1.0
