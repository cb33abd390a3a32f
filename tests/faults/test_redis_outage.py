"""Redis unreachable for a while under API load: the API answers only 202 or 503 with Retry-After (no 500,
never a dropped connection), `/health` answers 200 throughout, and 202s come back by themselves."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import Load, Platform, duplicates_outside_outages, report, running_platform, settle
from tests.support.waiting import wait_for

RECOVERY_LIMIT_S = 3.0


@dataclass(frozen=True)
class OutageForm:
    name: str
    outages: int
    down_s: float
    clients: int


SHORT = OutageForm("short", outages=1, down_s=5, clients=8)
LONG = OutageForm("long", outages=3, down_s=20, clients=16)


async def probe_health(platform: Platform, stop: asyncio.Event, found: list[int | str]) -> None:
    while not stop.is_set():
        try:
            found.append((await platform.client.get("/health", timeout=2)).status_code)
        except httpx.HTTPError as exc:
            found.append(type(exc).__name__)
        await asyncio.sleep(0.1)


async def first_accepted_after(load: Load, since: float, timeout: float) -> float | None:
    """When the first job posted after `since` was accepted; None if none was within `timeout`."""

    async def first() -> float | None:
        return min((at for at in load.accepted_at.values() if at > since), default=None)

    with suppress(AssertionError):
        return await wait_for(first, lambda at: at is not None, timeout=timeout)
    return None


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(LONG, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
async def test_api_answers_503_while_redis_is_down_and_202_again_after(tmp_path: Path, form: OutageForm) -> None:
    started = time.monotonic()
    async with running_platform(tmp_path, workers=1) as platform:
        assert platform.redis is not None and platform.api is not None
        api_pid, worker_pids = platform.api.pid, platform.worker_pids
        stop = asyncio.Event()
        health: list[int | str] = []
        load = Load(platform, "outage", seconds=lambda n: 0.01)
        tasks = [
            asyncio.create_task(load.run(clients=form.clients, until=stop, pace_s=0.05)),
            asyncio.create_task(probe_health(platform, stop, health)),
        ]
        recoveries: list[float] = []
        outages: list[tuple[float, float]] = []
        try:
            for _ in range(form.outages):
                await asyncio.sleep(1.5)  # load while Redis is up
                down_at = time.time()
                platform.redis.stop()
                await asyncio.sleep(form.down_s)
                platform.start_redis()
                back_at = time.time()
                outages.append((down_at, back_at))
                at = await first_accepted_after(load, back_at, timeout=RECOVERY_LIMIT_S * 2)
                recoveries.append(round(at - back_at, 2) if at is not None else float("inf"))
                await asyncio.sleep(1)  # load after the recovery
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        outcome = await settle(platform, load.accepted, timeout=60)
        same_processes = platform.api.pid == api_pid and platform.worker_pids == worker_pids
        restarts = list(platform.restarts)

    answers_503 = [a for a in load.answers if a.status == 503]
    unexplained = duplicates_outside_outages(outcome, platform.ledger, outages)
    report(
        "redis_outage_api_load",
        form.name,
        outages=form.outages,
        down_s=form.down_s,
        clients=form.clients,
        post_statuses=dict(load.statuses()),
        slowest_503_s=round(max((a.elapsed_s for a in answers_503), default=0), 3),
        first_202_after_restart_s=recoveries,
        health_statuses={str(k): health.count(k) for k in set(health)},
        accepted=outcome.accepted,
        lost=len(outcome.lost),
        duplicates=len(outcome.duplicates),
        unexplained_duplicates=len(unexplained),
        duration_s=round(time.monotonic() - started, 1),
    )
    assert set(load.statuses()) == {"202", "503"}, "only 202 and 503: no 500, no dropped connection"
    assert all(a.retry_after and a.retry_after.isdigit() for a in answers_503)
    assert set(health) == {200}
    assert max(recoveries) < RECOVERY_LIMIT_S
    assert outcome.lost == []
    assert unexplained == {}, "ran twice without being in flight during an outage"
    assert same_processes and restarts == []
