"""SIGTERM under load (a rolling restart): running jobs finish within the grace period, the ones still
running are cancelled and run again elsewhere without losing a try; nothing is lost and nothing fails."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.harness import Load, Platform, in_background, report, running_platform, settle
from tests.faults.harness import unexplained_duplicates as unexplained
from tests.support.waiting import wait_for

GRACE_S = 1
LONG_JOB_S = 3.0  # longer than the grace period: still running when it ends


@dataclass(frozen=True)
class ShutdownForm:
    name: str
    jobs: int
    sigterms: int
    every_s: float


SHORT = ShutdownForm("short", jobs=150, sigterms=2, every_s=1.5)
LONG = ShutdownForm("long", jobs=2000, sigterms=8, every_s=4)


def is_long(token: str) -> bool:
    return int(token.rpartition("-")[2]) % 10 == 0


async def wait_until_running_a_long_job(platform: Platform, prefer: int) -> int:
    """Until a worker runs a long job that will still be running when a grace period started now ends; the
    index of that worker, `prefer` when both do. Either worker, not one chosen in advance: which one picks up
    the long jobs an earlier SIGTERM requeued is the scheduler's choice, and waiting on the other one could
    wait for a long job that never comes."""

    def fresh_long_jobs(index: int) -> set[str]:
        pid = platform.slots[index].process.pid
        recent = {e.name for e in platform.ledger.entries() if e.kind == "start" and e.at > time.time() - 1.5}
        return {t for t in platform.ledger.open_starts(pid) & recent if is_long(t)}

    async def running_one() -> list[int]:
        return [i for i in (prefer, 1 - prefer) if fresh_long_jobs(i)]

    return (await wait_for(running_one, bool, timeout=20, interval=0.05))[0]


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(LONG, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
async def test_sigterm_requeues_unfinished_jobs_without_losing_or_failing_any(
    tmp_path: Path, form: ShutdownForm
) -> None:
    started = time.monotonic()
    rng = random.Random(2)
    env = {"SHUTDOWN_GRACE_SECONDS": str(GRACE_S), "MAX_JOBS": "10"}
    async with running_platform(tmp_path, workers=2, **env) as platform:
        # One job in ten outlasts the grace period.
        load = Load(platform, "term", seconds=lambda n: LONG_JOB_S if n % 10 == 0 else round(rng.uniform(0.1, 0.4), 3))
        stops, exit_codes, cancelled = [], [], []
        async with in_background(load.run(clients=2, total=form.jobs, pace_s=0.01)) as producer:
            for k in range(form.sigterms):
                await asyncio.sleep(form.every_s)
                index = await wait_until_running_a_long_job(platform, prefer=k % 2)
                sent, code = await platform.stop_worker(index, timeout=GRACE_S + 10, replace=True)
                stops.append(sent)
                exit_codes.append(code)
                cancelled.append(platform.ledger.open_starts(sent.pid) & set(load.accepted.values()))
            await producer
        outcome = await settle(platform, load.accepted, timeout=60 + form.jobs / 20)
        dead = await platform.dead_job_ids()
        token_ids = {token: job_id for job_id, token in load.accepted.items()}
        requeued = set().union(*cancelled)
        views = [(await platform.client.get(f"/v1/jobs/{token_ids[t]}")).json() for t in sorted(requeued)]
        unexpected_restarts = list(platform.restarts)

    starts = platform.ledger.by_token("start")
    ended = platform.ledger.ended()
    unexplained_duplicates = unexplained(outcome, platform.ledger, stops, unrecorded_window_s=0)
    report(
        "sigterm_workers",
        form.name,
        accepted=outcome.accepted,
        complete=outcome.complete,
        failed_or_dead=len(dead),
        lost=len(outcome.lost),
        sigterms=len(stops),
        exit_codes=exit_codes,
        cancelled_at_grace_end=[len(c) for c in cancelled],
        duplicates=len(outcome.duplicates),
        unexplained_duplicates=len(unexplained_duplicates),
        grace_s=GRACE_S,
        duration_s=round(time.monotonic() - started, 1),
    )
    assert exit_codes == [0] * form.sigterms
    assert unexpected_restarts == []
    assert outcome.lost == []
    assert outcome.complete == outcome.accepted == form.jobs, "no job failed"
    assert dead == set(), "no dead letters"
    assert all(cancelled), "each SIGTERM cut a job short"
    assert requeued <= ended, "every cancelled job ran again to completion"
    assert {e.job_try for t in requeued for e in starts[t]} == {1}, "the shutdown gave the try back"
    assert {v["tries"] for v in views} == {1}
    assert {v["status"] for v in views} == {"complete"}
    assert unexplained_duplicates == {}
    assert set(outcome.duplicates) == requeued


async def test_grace_period_ending_while_a_finished_job_is_recorded_still_exits_0(tmp_path: Path) -> None:
    """The grace period ends while a job that returned in time is still being recorded (Redis is slow to
    accept writes, here `CLIENT PAUSE WRITE`): that job must not run again, the one still running must be
    requeued with its try given back, and the worker must exit 0."""
    started = time.monotonic()
    env = {"SHUTDOWN_GRACE_SECONDS": str(GRACE_S), "JOB_LEASE_SECONDS": "3"}
    async with running_platform(tmp_path, workers=1, **env) as platform:
        finishing = (await platform.post_job("ledger_job", token="finishing", seconds=1.5))[1]
        running = (await platform.post_job("ledger_job", token="running", seconds=4.0))[1]
        assert finishing and running

        async def started_at() -> dict[str, float]:
            return {t: s[0].at for t, s in platform.ledger.by_token("start").items()}

        starts = await wait_for(started_at, lambda found: {"finishing", "running"} <= set(found), timeout=10)
        # SIGTERM 1.0 s into `finishing`: it returns 0.5 s into the grace period, but Redis holds its
        # writes from 0.3 s until 0.8 s after the grace period ends.
        await asyncio.sleep(max(0.0, starts["finishing"] + 1.0 - time.time()))
        async with in_background(platform.stop_worker(0, timeout=GRACE_S + 15, replace=True)) as stop:
            await asyncio.sleep(0.3)
            await platform.pause_redis(1.5, writes_only=True)
            sent, code = await stop
        outcome = await settle(platform, {finishing: "finishing", running: "running"}, timeout=20)
        ids = {"finishing": finishing, "running": running}
        views = {token: (await platform.client.get(f"/v1/jobs/{job_id}")).json() for token, job_id in ids.items()}

    runs = platform.ledger.by_token("start")
    report(
        "sigterm_grace_ends_during_a_slow_finish",
        "short",
        exit_code=code,
        finishing_runs=len(runs["finishing"]),
        running_tries=[e.job_try for e in runs["running"]],
        lost=len(outcome.lost),
        duration_s=round(time.monotonic() - started, 1),
    )
    assert code == 0, f"worker {sent.pid} exited {code}: {platform.log_tail('worker-1.log', 1500)}"
    assert outcome.lost == []
    assert [e.job_try for e in runs["finishing"]] == [1], "a job that returned within the grace period ran again"
    assert [e.job_try for e in runs["running"]] == [1, 1], "cancelled at the grace end, requeued with its try"
    assert {v["status"] for v in views.values()} == {"complete"}
    assert views["running"]["tries"] == 1
