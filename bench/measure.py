"""The measurements. Each returns figures and never judges them; every loop has a deadline.

The Redis client here (`Bench.redis`) is the benchmark's own observer; the commands it sends during a
counted window (ZCOUNT, RENAME, CONFIG, INFO) are not used by arq's or the platform's job path and are
left out of the per-job command counts.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis
from arq.constants import health_check_key_suffix, result_key_prefix
from redis.asyncio.connection import AbstractConnection

from bench.children import Children, child_env
from bench.keys import READY_KEY, STAGING
from bench.systems import QUEUE, System
from core.embedded_redis import free_port

HEALTH_KEY = QUEUE + health_check_key_suffix
OWN_COMMANDS = frozenset({"zcount", "rename", "config|resetstat", "config", "info", "flushall"})
START_DEADLINE_S = 60.0
SETTLE_S = 0.3
DRAIN_POLL_S = 0.002
LATENCY_POLL_S = 0.001
ROUND_TRIP_SAMPLE = 200


class Problem(Exception):
    """A measurement could not be taken (a process died, a start-up took too long); reported, not raised on."""


@dataclass(frozen=True)
class Sizes:
    rounds: int
    enqueue_jobs: int
    enqueue_warmup: int
    http_concurrency: int
    http_duration_s: float
    http_warmup_s: float
    httpx_duration_s: float
    drain_jobs: int
    latency_rate: float
    latency_duration_s: float
    scale_workers: tuple[int, ...]


FULL = Sizes(3, 5000, 200, 16, 5.0, 1.0, 3.0, 5000, 100.0, 5.0, (2, 4))
QUICK = Sizes(1, 500, 50, 16, 1.5, 0.5, 1.0, 800, 100.0, 1.5, (2, 4))


@dataclass
class Bench:
    """What every measurement needs: the children registry, the observer client, the sizes."""

    children: Children
    redis: ArqRedis
    redis_url: str
    sizes: Sizes
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when there is nothing to rank."""
    if not values:
        return float("nan")
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(q * len(ranked)) - 1))]


async def command_calls(redis: ArqRedis) -> dict[str, int]:
    """Calls per command so far (commands run inside Lua scripts count too), without the observer's own."""
    info: dict[str, Any] = await redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in info.items()}
    return {name: n for name, n in calls.items() if name not in OWN_COMMANDS}


def per_job(calls: dict[str, int], jobs: int) -> dict[str, float]:
    return {name: n / jobs for name, n in sorted(calls.items(), key=lambda item: -item[1])} if jobs else {}


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Count writes to Redis sockets in this process: one per round trip (a pipeline is one)."""
    counter = [0]
    original = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        counter[0] += 1
        await original(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


BATCH_SIZE = 500


async def enqueue_rate(bench: Bench, system: System) -> dict[str, float]:
    """(1) Enqueue one at a time through the pool; also Redis round trips and commands per enqueue, and
    batches of BATCH_SIZE (the platform's enqueue_many; for arq, concurrent enqueue_job calls)."""
    sizes, redis = bench.sizes, bench.redis
    await redis.flushall()
    async with system.producer(bench.redis_url) as producer:
        for _ in range(sizes.enqueue_warmup):
            await producer.enqueue()
        with counting_round_trips() as trips:
            for _ in range(ROUND_TRIP_SAMPLE):
                await producer.enqueue()
        await redis.config_resetstat()
        deadline = time.perf_counter() + 60
        started = time.perf_counter()
        done = 0
        while done < sizes.enqueue_jobs and time.perf_counter() < deadline:
            await producer.enqueue()
            done += 1
        elapsed = time.perf_counter() - started
        calls = await command_calls(redis)
        await redis.flushall()
        batch_started = time.perf_counter()
        batched = 0
        while batched < sizes.enqueue_jobs and time.perf_counter() < deadline:
            batched += await producer.enqueue_batch(BATCH_SIZE)
        batch_elapsed = time.perf_counter() - batch_started
    await redis.flushall()
    return {
        "enqueue_batch_per_s": batched / batch_elapsed,
        "enqueue_per_s": done / elapsed,
        "enqueue_round_trips": trips[0] / ROUND_TRIP_SAMPLE,
        "enqueue_commands": sum(calls.values()) / done,
    }


async def _http_status(port: int, path: str) -> int | None:
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                line = await reader.readline()
            finally:
                writer.close()
        return int(line.split(b" ", 2)[1])
    except (OSError, TimeoutError, ValueError, IndexError):
        return None


async def _load(bench: Bench, port: int, client: str, duration_s: float) -> dict[str, Any]:
    sizes = bench.sizes
    argv = [
        "-m", "bench.http_load", "--url", f"http://127.0.0.1:{port}/v1/jobs", "--client", client,
        "--concurrency", str(sizes.http_concurrency), "--duration", str(duration_s),
        "--warmup", str(sizes.http_warmup_s),
    ]  # fmt: skip
    load = bench.children.spawn(f"load-{client}", argv, child_env(bench.redis_url), capture=True)
    try:
        out, err = await asyncio.to_thread(load.communicate, timeout=duration_s + sizes.http_warmup_s + 60)
    except subprocess.TimeoutExpired:
        raise Problem(f"the {client} load generator did not finish") from None
    finally:
        bench.children.stop(load)
    if load.returncode != 0:
        raise Problem(f"the {client} load generator failed: {err.decode()[-500:]}")
    result: dict[str, Any] = json.loads(out)
    return result


async def http_rate(
    bench: Bench, system: System, on_api_ready: Callable[[subprocess.Popen[bytes]], None] | None = None
) -> dict[str, float]:
    """(2) `POST /v1/jobs` on one uvicorn process, with the raw client and with httpx."""
    assert system.http_app is not None
    redis, sizes = bench.redis, bench.sizes
    await redis.flushall()
    port = free_port()
    env = child_env(bench.redis_url, **system.worker_env)
    argv = ["-m", "uvicorn", system.http_app, "--host", "127.0.0.1", "--port", str(port)]
    if not system.platform:
        argv += ["--log-level", "warning"]  # the tuned baseline logs at WARNING, as the platform is told to
    api = bench.children.spawn(f"{system.key}-api", argv, env)
    try:
        deadline = time.perf_counter() + START_DEADLINE_S
        while await _http_status(port, "/health") != 200:
            if api.poll() is not None:
                raise Problem(f"uvicorn {system.http_app} exited with {api.returncode}")
            if time.perf_counter() > deadline:
                raise Problem(f"uvicorn {system.http_app} did not answer within {START_DEADLINE_S}s")
            await asyncio.sleep(0.05)
        if on_api_ready:
            on_api_ready(api)
        raw = await _load(bench, port, "raw", sizes.http_duration_s)
        queued = int(await redis.zcard(QUEUE))
        await redis.flushall()
        via_httpx = await _load(bench, port, "httpx", sizes.httpx_duration_s)
    finally:
        bench.children.stop(api)
    await redis.flushall()
    accepted = int(raw["statuses"].get("202", 0))
    if accepted != raw["requests"] or raw["errors"]:
        print(f"  note: {system.key} HTTP statuses {raw['statuses']}, errors {raw['errors']}", file=sys.stderr)
    return {
        "http_rps": raw["rps"],
        "http_p50_ms": raw["p50_ms"],
        "http_p99_ms": raw["p99_ms"],
        "http_jobs_queued": queued,
        "httpx_rps": via_httpx["rps"],
        "httpx_p99_ms": via_httpx["p99_ms"],
    }


async def stage(bench: Bench, system: System, jobs: int) -> list[str]:
    """Enqueue `jobs` no-op jobs with the system's own producer into a side queue no worker reads."""
    ids: list[str] = []
    async with system.producer(bench.redis_url) as producer:
        deadline = time.perf_counter() + 120
        while len(ids) < jobs and time.perf_counter() < deadline:
            batch = min(64, jobs - len(ids))
            ids += await asyncio.gather(*(producer.enqueue(STAGING) for _ in range(batch)))
    if len(ids) < jobs:
        raise Problem(f"staged only {len(ids)} of {jobs} jobs")
    return ids


async def start_workers(bench: Bench, system: System, count: int) -> tuple[list[subprocess.Popen[bytes]], float]:
    """Start `count` worker processes and wait until each finished start-up and one has polled the queue."""
    await bench.redis.delete(READY_KEY)
    env = child_env(bench.redis_url, **system.worker_env)
    argv = system.worker_argv
    started = time.perf_counter()
    names = [f"{system.key}-worker{i}" for i in range(count)]
    processes = [bench.children.spawn(name, argv, env) for name in names]
    try:
        while await system.ready_workers(bench.redis) < count or not await bench.redis.exists(HEALTH_KEY):
            if any(p.poll() is not None for p in processes):
                dead = next(n for n, p in zip(names, processes, strict=True) if p.poll() is not None)
                raise Problem(f"exited at start-up: {bench.children.log_tail(dead)}")
            if time.perf_counter() - started > START_DEADLINE_S:
                raise Problem(f"{count} {system.key} workers not ready within {START_DEADLINE_S}s")
            await asyncio.sleep(0.01)
    except BaseException:
        bench.children.stop(*processes)
        raise
    return processes, time.perf_counter() - started


async def _results_present(redis: ArqRedis, ids: list[str]) -> int:
    present = 0
    for start in range(0, len(ids), 500):
        values = await redis.mget([result_key_prefix + job_id for job_id in ids[start : start + 500]])
        present += sum(value is not None for value in values)
    return present


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; NaN where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu_s(redis: ArqRedis) -> float:
    info: dict[str, Any] = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def timed_drain(
    bench: Bench, system: System, ids: list[str], workers: list[subprocess.Popen[bytes]]
) -> dict[str, Any]:
    """(3)/(5)/(6) Release the staged backlog at once (RENAME onto the queue) and time until the queue is empty.

    Keys the producer writes next to the queue (the platform's wake tokens) move with it, in the same
    transaction, so a worker that waits for them sees what a real enqueue would have left. The rate is
    taken between the first and the last completion, so one poll delay before the first pickup (reported on
    its own) does not count against a short run; commands, CPU and log output cover the whole window.
    """
    redis, jobs = bench.redis, len(ids)
    moves = [(STAGING, QUEUE)]
    for staged, real in zip(system.queue_companions(STAGING), system.queue_companions(QUEUE), strict=True):
        if await redis.exists(staged):
            moves.append((staged, real))
    logs = [bench.children.log_path(f"{system.key}-worker{i}") for i in range(len(workers))]
    await asyncio.sleep(SETTLE_S)
    calls_before = await command_calls(redis)
    cpu_before = [await redis_cpu_s(redis), *(process_cpu_s(w.pid) for w in workers)]
    log_before = sum(_size(path) for path in logs)
    released = time.perf_counter()
    async with redis.pipeline(transaction=True) as pipe:
        for source, target in moves:
            pipe.rename(source, target)
        await pipe.execute()
    deadline = released + max(120.0, jobs / 20)
    first_at, left_at_first = None, jobs
    remaining = jobs
    while remaining:
        remaining = int(await redis.zcount(QUEUE, "-inf", "+inf"))
        now = time.perf_counter()
        if first_at is None and remaining < jobs:
            first_at, left_at_first = now, remaining
        if now > deadline or any(w.poll() is not None for w in workers):
            break
        if remaining:
            await asyncio.sleep(DRAIN_POLL_S)
    finished = time.perf_counter()
    cpu_after = [await redis_cpu_s(redis), *(process_cpu_s(w.pid) for w in workers)]
    log_after = sum(_size(path) for path in logs)
    calls_after = await command_calls(redis)
    done = await _results_present(redis, ids)
    if remaining or done != jobs:
        print(f"  note: drain ended with {remaining} queued and {done}/{jobs} results", file=sys.stderr)
    calls = {name: n - calls_before.get(name, 0) for name, n in calls_after.items()}
    for name in ("multi", "exec"):  # the release transaction above
        calls[name] = calls.get(name, 0) - 1
    steady_jobs = done - (jobs - left_at_first)
    steady_s = finished - first_at if first_at is not None else 0.0
    window_s = finished - released
    return {
        "rate": steady_jobs / steady_s if steady_s > 0 and steady_jobs > 0 else done / window_s,
        "overall_rate": done / window_s,
        "first_pickup_ms": ((first_at or finished) - released) * 1000,
        "commands": per_job({name: n for name, n in calls.items() if n > 0}, done),
        "redis_cpu_pct": (cpu_after[0] - cpu_before[0]) / window_s * 100,
        "workers_cpu_pct": sum(a - b for a, b in zip(cpu_after[1:], cpu_before[1:], strict=True)) / window_s * 100,
        "log_bytes_per_job": (log_after - log_before) / done if done else math.nan,
    }


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def e2e_latency(bench: Bench, system: System) -> dict[str, float]:
    """(4) Enqueue at a steady rate; one observer polls every pending result key with one MGET every 1 ms."""
    redis, sizes = bench.redis, bench.sizes
    total = round(sizes.latency_rate * sizes.latency_duration_s)
    pending: dict[str, float] = {}
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    enqueuing = True

    async def observe() -> None:
        deadline = time.perf_counter() + sizes.latency_duration_s + 30
        while (enqueuing or pending) and time.perf_counter() < deadline:
            if pending:
                ids = list(pending)
                values = await redis.mget([result_key_prefix + job_id for job_id in ids])
                seen = time.perf_counter()
                for job_id, value in zip(ids, values, strict=True):
                    if value is not None:
                        latencies.append(seen - pending.pop(job_id))
            await asyncio.sleep(LATENCY_POLL_S)

    async with system.producer(bench.redis_url) as producer:

        async def one() -> None:
            started = time.perf_counter()
            pending[await producer.enqueue()] = started

        observer = asyncio.create_task(observe())
        begin = time.perf_counter()
        try:
            for i in range(total):
                delay = begin + i / sizes.latency_rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            offered_s = time.perf_counter() - begin
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks)
        finally:
            enqueuing = False
            await observer
    lost = total - len(latencies)
    if lost:
        print(f"  note: {system.key} latency run lost {lost} of {total} jobs", file=sys.stderr)
    return {
        "e2e_p50_ms": percentile(latencies, 0.50) * 1000,
        "e2e_p95_ms": percentile(latencies, 0.95) * 1000,
        "e2e_p99_ms": percentile(latencies, 0.99) * 1000,
        "e2e_max_ms": max(latencies, default=float("nan")) * 1000,
        "e2e_jobs": len(latencies),
        "e2e_offered_per_s": total / max(1e-9, offered_s),
    }


def median(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")
