"""Every outcome recorded once, by whoever still holds the job (issue 7), with real worker and Redis processes:
a worker frozen past its lease cannot overwrite the success of the worker that took its jobs over, a Redis
restart shorter than the lease does not make finished jobs run again, and a job retried with no delay is
claimed again at once, not after a lease."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from tests.faults.harness import report, running_platform
from tests.support.waiting import wait_for

JOB_MODULES = "jobs,tests.support.sample_jobs,tests.faults.fault_jobs,tests.faults.outcome_jobs"


def log_events(path: Path) -> list[str]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line).get("event", ""))
        except ValueError:
            continue
    return events


async def test_frozen_worker_cannot_overwrite_the_outcome_of_the_worker_that_took_over(tmp_path: Path) -> None:
    lease_s = 2
    async with running_platform(
        tmp_path, workers=2, JOB_MODULES=JOB_MODULES, JOB_LEASE_SECONDS=str(lease_s), MAX_JOBS="5"
    ) as platform:
        job_ids = {}
        for n in range(10):
            answer, job_id = await platform.post_job("slow_ledger_job", token=f"t{n}", seconds=3)
            assert answer.status == 202 and job_id
            job_ids[f"t{n}"] = job_id
        frozen_pid = platform.worker_pids[0]
        await wait_for(
            lambda: asyncio.sleep(0, platform.ledger.open_starts(frozen_pid)), lambda s: len(s) > 0, timeout=10
        )
        frozen_jobs = platform.ledger.open_starts(frozen_pid)
        platform.signal_worker(0, signal.SIGSTOP)
        await asyncio.sleep(2 * lease_s + 1.5)  # its leases lapse; the other worker takes its jobs over
        platform.signal_worker(0, signal.SIGCONT)  # its stale copies wake up and try to end their jobs

        async def statuses() -> dict[str, str]:
            return await platform.job_statuses(list(job_ids.values()))

        final = await wait_for(statuses, lambda s: set(s.values()) == {"complete"}, timeout=30, interval=0.2)
        await asyncio.sleep(1)  # any late stale write would land now
        final = await statuses()
        dead = await platform.dead_job_ids()
        starts = platform.ledger.by_token("start")
        results = {}
        for token, job_id in job_ids.items():
            body = (await platform.client.get(f"/v1/jobs/{job_id}")).json()
            results[token] = (body["status"], body["result"], body["error"])
        frozen_log = platform.log_tail("worker-1.log", chars=200_000)

    events = [json.loads(line).get("event") for line in frozen_log.splitlines() if line.startswith("{")]
    report(
        "frozen_worker",
        "short",
        frozen_jobs=len(frozen_jobs),
        starts_per_job=max(len(s) for s in starts.values()),
        stale_outcomes=events.count("job.stale_outcome"),
        leases_lost=events.count("job.lease_lost"),
    )
    assert frozen_jobs, "the frozen worker was running jobs when it froze"
    assert set(final.values()) == {"complete"} and dead == set()
    assert all(
        status == "complete" and result == token and error is None for token, (status, result, error) in results.items()
    )
    # The stale copy neither renewed nor removed the new claim: no job was started a third time.
    assert all(len(entries) <= 2 for entries in starts.values()), {t: len(e) for t, e in starts.items()}
    assert all(len(starts[token]) == 2 for token in frozen_jobs), "each frozen job ran again on the other worker"
    assert events.count("job.stale_outcome") + events.count("job.lease_lost") >= len(frozen_jobs)


async def test_jobs_finishing_during_a_redis_restart_shorter_than_the_lease_do_not_run_again(tmp_path: Path) -> None:
    async with running_platform(tmp_path, workers=1, JOB_MODULES=JOB_MODULES, JOB_LEASE_SECONDS="10") as platform:
        assert platform.redis is not None
        job_ids = {}
        for n in range(20):
            answer, job_id = await platform.post_job("slow_ledger_job", token=f"r{n}", seconds=1.5)
            assert answer.status == 202 and job_id
            job_ids[f"r{n}"] = job_id
        pid = platform.worker_pids[0]
        await wait_for(lambda: asyncio.sleep(0, platform.ledger.open_starts(pid)), lambda s: len(s) == 20, timeout=10)
        platform.redis.kill()
        down_at = time.monotonic()
        await wait_for(lambda: asyncio.sleep(0, platform.ledger.ended()), lambda e: len(e) == 20, timeout=10)
        await asyncio.sleep(max(0.0, 4 - (time.monotonic() - down_at)))  # a 4 s outage, shorter than the lease
        platform.start_redis()

        async def statuses() -> dict[str, str]:
            return await platform.job_statuses(list(job_ids.values()))

        final = await wait_for(statuses, lambda s: set(s.values()) == {"complete"}, timeout=30, interval=0.2)
        await asyncio.sleep(10.5)  # past the lease: a job whose outcome was dropped would run again by now
        starts = platform.ledger.by_token("start")
        final = await statuses()

    reruns = sum(len(entries) - 1 for entries in starts.values())
    report("redis_blip_shorter_than_lease", "short", jobs=20, outage_s=4, reruns=reruns)
    assert set(final.values()) == {"complete"}, final
    assert reruns == 0, {t: len(e) for t, e in starts.items() if len(e) > 1}


async def test_jobs_retried_with_no_delay_are_claimed_again_at_once(tmp_path: Path) -> None:
    async with running_platform(tmp_path, workers=2, JOB_MODULES=JOB_MODULES, JOB_LEASE_SECONDS="10") as platform:
        job_ids = []
        for n in range(300):
            answer, job_id = await platform.post_job("fail_at_once", token=f"z{n}")
            assert answer.status == 202 and job_id
            job_ids.append(job_id)

        async def dead() -> int:
            return len(await platform.dead_job_ids())

        await wait_for(dead, lambda n: n == 300, timeout=60, interval=0.3)
        starts = platform.ledger.by_token("start")

    gaps = [
        later.at - earlier.at
        for entries in starts.values()
        for earlier, later in zip(
            sorted(entries, key=lambda e: e.at), sorted(entries, key=lambda e: e.at)[1:], strict=False
        )
    ]
    report(
        "zero_delay_retries",
        "short",
        jobs=300,
        tries=sum(len(e) for e in starts.values()),
        max_gap_s=round(max(gaps), 3),
    )
    assert all(len(entries) == 3 for entries in starts.values())
    assert max(gaps) < 3.0, f"a retry waited {max(gaps):.1f}s: it sat claimed but not running"
