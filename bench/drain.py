"""`python -m bench.drain [--rounds N] [--jobs N]`: only the platform's one-worker drain of `make bench`.

For a change to the job path, run it on the code before and after, interleaved, on one machine: prints one JSON
line per round (drain rate, Redis commands per job with the top commands, CPU) and the medians at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
from dataclasses import replace
from typing import Any, TextIO

from arq.connections import ArqRedis

from bench.children import OUT, Children
from bench.measure import QUICK, Bench, stage, start_workers, timed_drain
from bench.systems import PLATFORM
from core.embedded_redis import free_port, start_redis


async def script_usec(redis: ArqRedis) -> int:
    """Microseconds Redis spent in scripts so far (their own commands included)."""
    info: dict[str, Any] = await redis.info("commandstats")
    return sum(int(stat["usec"]) for name, stat in info.items() if name in ("cmdstat_evalsha", "cmdstat_eval"))


async def drain_rounds(
    children: Children, redis_url: str, rounds: int, jobs: int, out: TextIO | None = None
) -> list[dict[str, Any]]:
    """`rounds` one-worker drains of `jobs` no-op jobs; each round's row is printed as a JSON line to `out`
    (standard output by default) as it ends."""
    redis = ArqRedis.from_url(redis_url)
    bench = Bench(children, redis, redis_url, replace(QUICK, drain_jobs=jobs))
    rows = []
    try:
        for round_no in range(1, rounds + 1):
            await redis.flushall()
            ids = await stage(bench, PLATFORM, jobs)
            processes, _ = await start_workers(bench, PLATFORM, 1)
            try:
                usec_before = await script_usec(redis)
                drained = await timed_drain(bench, PLATFORM, ids, processes)
                usec_after = await script_usec(redis)
            finally:
                children.stop(*processes)
            commands = drained["commands"]
            row = {
                "round": round_no,
                "rate": round(drained["rate"]),
                "commands_per_job": round(sum(commands.values()), 2),
                "top": {name: round(n, 2) for name, n in list(commands.items())[:12]},
                "script_usec_per_job": round((usec_after - usec_before) / jobs, 1),
                "redis_cpu_pct": round(drained["redis_cpu_pct"]),
                "worker_cpu_pct": round(drained["workers_cpu_pct"]),
            }
            print(json.dumps(row), file=out or sys.stdout, flush=True)
            rows.append(row)
    finally:
        await redis.aclose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args(argv)
    log_dir = OUT / "drain-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    with Children(log_dir) as children:
        redis = start_redis(free_port(), OUT / "drain-redis", appendonly=False, log_file=log_dir / "redis.log")
        children.adopt("redis", redis.process)
        rows = asyncio.run(drain_rounds(children, redis.url, args.rounds, args.jobs))
    print(json.dumps({"median": medians(rows)}), flush=True)
    return 0


def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        key: statistics.median(row[key] for row in rows)
        for key in ("rate", "commands_per_job", "script_usec_per_job", "redis_cpu_pct", "worker_cpu_pct")
    }


if __name__ == "__main__":
    sys.exit(main())
