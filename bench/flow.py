"""`python -m bench.flow [--seconds 30] [--backlog 10000] [--rounds 5]`: issue 11's limit and priority targets.

- A `5/s` rate limit over three worker processes holds within 10% over `--seconds`, while a `concurrency=2`
  function runs beside it and is never more than two at once (a ledger of start and end times the jobs write to
  a file, outside Redis).
- A high-priority job enqueued behind `--backlog` default jobs, while one worker drains them, starts within
  50 ms (median and worst of `--rounds`).
Prints one JSON line per measurement and a summary line with each target met or not; exits 1 if one is missed.
The third target (no cost without these features) is `python -m bench.drain`, before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis

from bench.children import OUT, Children, child_env
from core import keys
from core.embedded_redis import free_port, start_redis
from core.enqueue import JobRequest, enqueue, enqueue_many
from core.registry import Registry
from settings import Settings

JOB_MODULES = "jobs,bench.noop_jobs,bench.flow_jobs"
WORKER_ENV = {"MAX_JOBS": "100", "LOG_LEVEL": "WARNING", "JOB_MODULES": JOB_MODULES}
RATE, RATE_PERIOD_S, CONCURRENCY = 5, 1.0, 2
PRIORITY_TARGET_MS = 50.0


def ledger(path: Path) -> list[tuple[str, float, str]]:
    if not path.exists():
        return []
    return [(kind, float(at), tag) for kind, at, tag in (line.split() for line in path.read_text().splitlines())]


def max_overlap(rows: list[tuple[str, float, str]], tag: str) -> int:
    steps = sorted((at, 1 if kind == "start" else -1) for kind, at, name in rows if name == tag)
    running = most = 0
    for _, step in sorted(steps, key=lambda s: (s[0], s[1])):
        running += step
        most = max(most, running)
    return most


async def start_workers(children: Children, redis: ArqRedis, url: str, count: int, name: str) -> list[Any]:
    processes = [
        children.spawn(f"{name}{i}", ["-m", "arq", "worker.WorkerSettings"], child_env(url, **WORKER_ENV))
        for i in range(count)
    ]
    deadline = time.monotonic() + 60
    while await redis.zcard(keys.WORKERS) < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            raise RuntimeError(f"workers did not start: {children.log_tail(f'{name}0', 5)}")
        await asyncio.sleep(0.05)
    return processes


async def limits_run(
    children: Children, redis: ArqRedis, url: str, registry: Registry, seconds: float
) -> dict[str, Any]:
    path = OUT / "flow-limits.ledger"
    path.unlink(missing_ok=True)
    rated, paired = registry.get("bench_rated"), registry.get("bench_paired")
    hold_s = 0.15
    requests = [JobRequest(rated, {"ledger": str(path)}) for _ in range(int(seconds * RATE * 1.3) + 10)]
    requests += [JobRequest(paired, {"ledger": str(path), "hold_s": hold_s}) for _ in range(int(seconds * 16))]
    processes = await start_workers(children, redis, url, 3, "flow-limits-worker")
    try:
        for first in range(0, len(requests), 1000):
            await enqueue_many(redis, requests[first : first + 1000])
        first_start: float | None = None
        while first_start is None or time.time() < first_start + seconds + 0.5:
            rows = ledger(path)
            starts = [at for kind, at, tag in rows if kind == "start" and tag == "rated"]
            first_start = min(starts) if starts else None
            await asyncio.sleep(0.2)
    finally:
        children.stop(*processes)
    rows = ledger(path)
    starts = sorted(at for kind, at, tag in rows if kind == "start" and tag == "rated")
    in_window = sum(1 for at in starts if at < starts[0] + seconds)
    expected = seconds * RATE / RATE_PERIOD_S
    worst_second = max(sum(1 for at in starts if s <= at < s + 0.9 * RATE_PERIOD_S) for s in starts)
    overlap = max_overlap(rows, "paired")
    paired_runs = sum(1 for kind, _, tag in rows if kind == "end" and tag == "paired")
    return {
        "measure": "limits",
        "workers": 3,
        "seconds": seconds,
        "rated_starts": in_window,
        "rated_expected": expected,
        "rated_error_pct": round(100 * (in_window - expected) / expected, 1),
        "rated_most_in_0.9s": worst_second,
        "paired_runs": paired_runs,
        "paired_max_concurrent": overlap,
        "met": abs(in_window - expected) <= 0.1 * expected and overlap <= CONCURRENCY,
    }


async def priority_round(
    children: Children, redis: ArqRedis, url: str, registry: Registry, backlog: int, round_no: int
) -> dict[str, Any]:
    await redis.flushall()
    path = OUT / "flow-priority.ledger"
    path.unlink(missing_ok=True)
    noop = registry.get("noop")
    for first in range(0, backlog, 1000):
        await enqueue_many(redis, [JobRequest(noop, {}) for _ in range(min(1000, backlog - first))])
    processes = await start_workers(children, redis, url, 1, f"flow-priority-worker{round_no}-")
    try:
        while await redis.zcard("arq:queue") > backlog * 0.9:  # draining, at capacity
            await asyncio.sleep(0.01)
        waiting = await redis.zcard("arq:queue")
        enqueued_at = time.time()
        await enqueue(redis, registry.get("bench_marker"), {"ledger": str(path), "tag": "high"}, priority="high")
        while not ledger(path):
            await asyncio.sleep(0.002)
        started_at = ledger(path)[0][1]
        left = await redis.zcard("arq:queue")
    finally:
        children.stop(*processes)
    return {
        "measure": "priority",
        "round": round_no,
        "waiting_when_enqueued": waiting,
        "still_waiting_when_it_started": left,
        "start_ms": round((started_at - enqueued_at) * 1000, 1),
    }


async def run(children: Children, url: str, seconds: float, backlog: int, rounds: int) -> dict[str, Any]:
    """Both measurements; prints each row as a JSON line and returns the summary."""
    redis = ArqRedis.from_url(url)
    settings = Settings(redis_url=url, job_modules=JOB_MODULES.split(","))
    registry = Registry.build(settings.job_modules, settings)
    try:
        await redis.flushall()
        limits = await limits_run(children, redis, url, registry, seconds)
        print(json.dumps(limits), flush=True)
        latencies = []
        for round_no in range(1, rounds + 1):
            row = await priority_round(children, redis, url, registry, backlog, round_no)
            print(json.dumps(row), flush=True)
            latencies.append(row["start_ms"])
    finally:
        await redis.aclose()
    priority_met = statistics.median(latencies) <= PRIORITY_TARGET_MS
    summary = {
        "rate_limit_within_10pct": limits["met"],
        "rated_error_pct": limits["rated_error_pct"],
        "paired_max_concurrent": limits["paired_max_concurrent"],
        "high_start_ms_median": statistics.median(latencies),
        "high_start_ms_max": max(latencies),
        "high_within_50ms": priority_met,
    }
    print(json.dumps({"summary": summary}), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flow", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    log_dir = OUT / "flow-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    with Children(log_dir) as children:
        redis = start_redis(free_port(), OUT / "flow-redis", appendonly=False, log_file=log_dir / "redis.log")
        children.adopt("redis", redis.process)
        summary = asyncio.run(run(children, redis.url, args.seconds, args.backlog, args.rounds))
    return 0 if summary["rate_limit_within_10pct"] and summary["high_within_50ms"] else 1


if __name__ == "__main__":
    sys.exit(main())
