"""`python -m bench.log_cost [--rounds N] [--jobs N]`: what logging costs a worker, and nothing else.

The drain part of `make bench` alone, for the platform's worker at `LOG_LEVEL=INFO` (the default: two lines
per job) and at `WARNING` (none), interleaved round by round on the same Redis, so the two rates are taken under
the same load. Prints each round and the medians of the drain rate and of the worker's CPU per job (steadier
than the rate on a machine shared with other work); the target is INFO within 15% of WARNING.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from dataclasses import replace

from arq.connections import ArqRedis

from bench.children import OUT, Children
from bench.measure import FULL, Bench, stage, start_workers, timed_drain
from bench.systems import PLATFORM
from core.embedded_redis import free_port, start_redis

LEVELS = ("INFO", "WARNING")


async def drain_at(bench: Bench, level: str) -> dict[str, float]:
    system = replace(PLATFORM, key=f"platform-{level.lower()}", worker_env={**PLATFORM.worker_env, "LOG_LEVEL": level})
    await bench.redis.flushall()
    ids = await stage(bench, system, bench.sizes.drain_jobs)
    processes, _ = await start_workers(bench, system, 1)
    try:
        return await timed_drain(bench, system, ids, processes)
    finally:
        bench.children.stop(*processes)


async def run(
    redis_url: str, children: Children, rounds: int, jobs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    redis = ArqRedis.from_url(redis_url)
    rates: dict[str, list[float]] = {level: [] for level in LEVELS}
    cpu_us: dict[str, list[float]] = {level: [] for level in LEVELS}
    try:
        bench = Bench(children, redis, redis_url, replace(FULL, rounds=rounds, drain_jobs=jobs))
        for round_no in range(1, rounds + 1):
            for level in LEVELS if round_no % 2 else reversed(LEVELS):
                drained = await drain_at(bench, level)
                rates[level].append(drained["rate"])
                cpu_us[level].append(drained["workers_cpu_pct"] / 100 / drained["overall_rate"] * 1e6)
                print(
                    f"round {round_no} {level:<7} {drained['rate']:7,.0f} jobs/s, worker CPU "
                    f"{cpu_us[level][-1]:5.0f} µs/job, {drained['log_bytes_per_job']:.0f} log bytes/job",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        await redis.aclose()
    return rates, cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.log_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=FULL.drain_jobs, help="backlog drained per measurement")
    args = parser.parse_args(argv)
    with Children(OUT / "logs") as children:
        redis = start_redis(free_port(), OUT / "redis", appendonly=False, log_file=OUT / "logs" / "redis.log")
        children.adopt("redis", redis.process)
        rates, cpu_us = asyncio.run(run(redis.url, children, args.rounds, args.jobs))
    m = medians(rates, cpu_us)
    print(
        f"median over {args.rounds} rounds: INFO {m['info_rate']:,.0f} jobs/s, WARNING {m['warning_rate']:,.0f} "
        f"jobs/s, INFO at {m['info_share']:.0%} of WARNING; worker CPU per job: INFO {m['info_cpu_us']:.0f} µs, "
        f"WARNING {m['warning_cpu_us']:.0f} µs, INFO at {m['info_share_by_cpu']:.0%} of WARNING's rate by CPU"
    )
    return 0


def medians(rates: dict[str, list[float]], cpu_us: dict[str, list[float]]) -> dict[str, float]:
    """The medians over rounds, and INFO's rate as a share of WARNING's, by drain rate and by worker CPU."""
    info, warning = (statistics.median(rates[level]) for level in LEVELS)
    info_cpu, warning_cpu = (statistics.median(cpu_us[level]) for level in LEVELS)
    return {
        "info_rate": info,
        "warning_rate": warning,
        "info_share": info / warning,
        "info_cpu_us": info_cpu,
        "warning_cpu_us": warning_cpu,
        "info_share_by_cpu": warning_cpu / info_cpu,
    }


if __name__ == "__main__":
    sys.exit(main())
