"""Two workers share a 1-second cron: each tick runs exactly once, also when one worker stalls (SIGSTOP)
across several ticks, and no tick is skipped while a worker runs."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.harness import Platform, report, running_platform

CRON = "record_tick"


@dataclass(frozen=True)
class CronForm:
    name: str
    steady_s: float
    stalls: int
    stall_s: float
    catch_up_s: float


SHORT = CronForm("short", steady_s=5, stalls=1, stall_s=3, catch_up_s=2)
LONG = CronForm("long", steady_s=20, stalls=4, stall_s=12, catch_up_s=4)  # stalls longer than the 10 s lease


def tick_ids(platform: Platform) -> list[str]:
    return [e.name for e in platform.ledger.entries() if e.kind == "tick"]


def tick_ms(job_id: str) -> int:
    return int(job_id.rpartition(":")[2])


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(LONG, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
async def test_each_cron_tick_runs_exactly_once_across_workers_and_stalls(tmp_path: Path, form: CronForm) -> None:
    started = time.monotonic()
    async with running_platform(tmp_path, workers=2, FAULT_CRON="1") as platform:
        await asyncio.sleep(form.steady_s)  # both workers schedule every tick
        steady = Counter(tick_ids(platform))
        stalled: list[int] = []
        for n in range(form.stalls):
            stalls = platform.signal_worker(n % 2, signal.SIGSTOP)
            stalled.append(stalls.pid)
            await asyncio.sleep(form.stall_s)
            platform.signal_worker(n % 2, signal.SIGCONT)
            await asyncio.sleep(form.catch_up_s)  # the resumed worker catches up on the ticks it slept through
        crons = {c["name"]: c for c in (await platform.client.get("/v1/cron")).json()}
        dead = await platform.dead_job_ids()
        runs_by_pid = Counter(e.pid for e in platform.ledger.entries() if e.kind == "tick")
        restarts = list(platform.restarts)

    ticks = Counter(tick_ids(platform))
    seen = sorted(tick_ms(job_id) for job_id in ticks)
    expected = set(range(seen[0], seen[-1] + 1, 1000)) if seen else set()
    missing = sorted(expected - set(seen))
    twice = {job_id: n for job_id, n in ticks.items() if n > 1}
    report(
        "cron_two_workers",
        form.name,
        ticks=len(ticks),
        ticks_before_stall=len(steady),
        runs_twice=len(twice),
        missing_ticks=len(missing),
        stalls=form.stalls,
        stall_s=form.stall_s,
        runs_by_worker=sorted(runs_by_pid.values()),
        missed_runs_reported=crons[CRON]["missed_runs"],
        dead_letters=len(dead),
        duration_s=round(time.monotonic() - started, 1),
    )
    assert len(steady) >= form.steady_s - 3
    assert twice == {}, f"ticks run more than once: {twice}"
    assert missing == [], f"ticks skipped while a worker ran: {missing}"
    assert crons[CRON]["missed_runs"] == 0
    assert dead == set()
    assert restarts == []
