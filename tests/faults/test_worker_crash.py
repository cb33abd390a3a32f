"""SIGKILL workers while jobs run: nothing accepted is lost, only jobs in flight at a kill run twice, and a
killed worker's jobs complete elsewhere within a lease."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.harness import Load, Platform, in_background, recovery, report, running_platform, settle
from tests.faults.harness import unexplained_duplicates as unexplained
from tests.support.waiting import wait_for

DEFAULT_LEASE_S = 10.0


@dataclass(frozen=True)
class CrashForm:
    name: str
    jobs: int
    kills: int
    lease_s: float | None  # None: the platform's default lease
    seconds: tuple[float, float]  # each job sleeps a uniform draw from this range
    kill_every_s: float


# Kills are spaced by more than a lease plus the longest job, so each kill's figures are its own.
SHORT = CrashForm("short", jobs=300, kills=2, lease_s=3, seconds=(0.4, 1.4), kill_every_s=5)
LONG = CrashForm("long", jobs=4000, kills=6, lease_s=None, seconds=(0.1, 0.6), kill_every_s=11)


async def wait_until_busy(platform: Platform, index: int) -> int:
    """Until worker `index` is a live process with jobs in flight; returns its pid."""

    async def busy() -> int | None:
        process = platform.slots[index].process
        alive = process.poll() is None
        return process.pid if alive and platform.ledger.open_starts(process.pid) else None

    pid = await wait_for(busy, lambda found: found is not None, timeout=20, interval=0.05)
    assert pid is not None
    return pid


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(LONG, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
async def test_sigkilled_workers_lose_no_job_and_rerun_only_jobs_in_flight(tmp_path: Path, form: CrashForm) -> None:
    started = time.monotonic()
    lease_s = form.lease_s or DEFAULT_LEASE_S
    env = {"MAX_JOBS": "10"} | ({"JOB_LEASE_SECONDS": str(form.lease_s)} if form.lease_s else {})
    rng = random.Random(1)
    async with running_platform(tmp_path, workers=2, **env) as platform:
        load = Load(platform, "crash", seconds=lambda n: round(rng.uniform(*form.seconds), 3))
        kills = []
        async with in_background(load.run(clients=4, total=form.jobs)) as producer:
            for k in range(form.kills):
                await asyncio.sleep(form.kill_every_s)  # let the load run between kills
                index = k % 2
                await wait_until_busy(platform, index)
                kills.append(platform.signal_worker(index, signal.SIGKILL))
            await producer
        outcome = await settle(platform, load.accepted, timeout=60 + form.jobs / 20)
        tokens = set(load.accepted.values())
        recoveries = [recovery(platform.ledger, kill, tokens) for kill in kills]
        restarted = len(platform.restarts)

    unexplained_duplicates = unexplained(outcome, platform.ledger, kills)
    completed_s = [r.completed_s for r in recoveries]
    report(
        "sigkill_workers",
        form.name,
        accepted=outcome.accepted,
        complete=outcome.complete,
        dead=outcome.dead,
        lost=len(outcome.lost),
        duplicates=len(outcome.duplicates),
        unexplained_duplicates=len(unexplained_duplicates),
        kills=len(kills),
        restarts=restarted,
        in_flight_at_kills=[r.in_flight for r in recoveries],
        restarted_after_s=[r.restarted_s for r in recoveries],
        recovery_s=completed_s,
        lease_s=lease_s,
        post_statuses=dict(load.statuses()),
        duration_s=round(time.monotonic() - started, 1),
    )
    assert load.statuses() == {"202": form.jobs}
    assert outcome.lost == [], f"accepted but never completed nor dead: {outcome.lost[:20]}"
    assert unexplained_duplicates == {}, "ran twice without being in flight at a kill"
    assert restarted >= form.kills
    assert all(r.in_flight > 0 for r in recoveries), "every kill hit a worker with jobs in flight"
    assert None not in completed_s, "a killed worker's job never completed elsewhere"
    assert max(s for s in completed_s if s is not None) < lease_s + 5
