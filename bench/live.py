"""Issue 8's targets for pushed results, on one real uvicorn API process over real sockets:

1. 2,000 idle result waiters (`GET /v1/jobs/{id}/result?wait=...` on jobs no worker runs): Redis commands a
   second while they wait (INFO stats `total_commands_processed` over 10 s; target < 100), and `POST /v1/jobs`
   p50/p99 at 50 requests/s with and without them (target: p99 no worse than 2x; no 503).
2. End to end with a worker: `POST /v1/jobs` then `GET /v1/jobs/{id}/result?wait=10` at 100 jobs/s
   (targets p50 <= 2 ms, p99 <= 6 ms), with the part the wait took and how long after the job's end its
   answer arrived.

`python -m bench.live [--waiters 2000] [--seconds 10]` prints one JSON line; logs under bench/out/logs/live-*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis

from bench.children import OUT, Children, child_env
from core import keys
from core.embedded_redis import free_port, start_redis

JOB_MODULES = "jobs,bench.noop_jobs"
NOOP = b'{"function": "noop", "kwargs": {}}'
WAIT_S = 120  # longer than phase 1 lasts
START_DEADLINE_S = 30.0
IO_TIMEOUT_S = 30.0
T = TypeVar("T")


class Http:
    """A minimal HTTP/1.1 keep-alive client on one socket (the load must not cost more than the API)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> Http:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    def send(self, method: str, path: str, body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write((head + "\r\n").encode() + body)

    async def answer(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length"))
        return status, await self.reader.readexactly(length)

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.send(method, path, body)
        async with asyncio.timeout(IO_TIMEOUT_S):
            return await self.answer()

    def close(self) -> None:
        self.writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _pool(port: int, size: int) -> asyncio.Queue[Http]:
    connections: asyncio.Queue[Http] = asyncio.Queue()
    for connection in await asyncio.gather(*(Http.open(port) for _ in range(size))):
        connections.put_nowait(connection)
    return connections


async def paced(
    port: int, rate: float, seconds: float, one: Any, connections: int = 32
) -> tuple[list[float], Counter[int]]:
    """Start `one(http)` `rate` times a second for `seconds` (open loop), each on a free keep-alive connection;
    returns each call's latency and the statuses it saw."""
    pool = await _pool(port, connections)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def run() -> None:
        http = await pool.get()
        started = time.perf_counter()
        try:
            for status in await one(http):
                statuses[status] += 1
            latencies.append(time.perf_counter() - started)
        finally:
            pool.put_nowait(http)

    tasks = []
    begin = time.perf_counter()
    for i in range(round(rate * seconds)):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(run()))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    statuses[-1] += sum(isinstance(r, BaseException) for r in results)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, statuses


async def post_job(http: Http) -> list[int]:
    status, _ = await http.call("POST", "/v1/jobs", NOOP)
    return [status]


WAIT_PARTS: list[float] = []  # of each end-to-end call, the part the result wait took
AFTER_END: list[float] = []  # from the job's end (its `finished_at`, ms) to its answer's arrival


async def post_then_wait(http: Http) -> list[int]:
    status, body = await http.call("POST", "/v1/jobs", NOOP)
    if status != 202:
        return [status]
    job_id = json.loads(body)["job_id"]
    started = time.perf_counter()
    done, answer = await http.call("GET", f"/v1/jobs/{job_id}/result?wait=10")
    arrived = time.time()
    WAIT_PARTS.append(time.perf_counter() - started)
    finished_at = json.loads(answer).get("finished_at")
    if finished_at:
        AFTER_END.append(arrived - datetime.fromisoformat(finished_at).timestamp())
    return [status, done]


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def commands(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_commands_processed"])


async def lrange_calls(redis: Redis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_lrange", {}).get("calls", 0))


async def _until(probe: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not await probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {deadline_s}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def idle_waiters(port: int, redis: Redis, count: int) -> AsyncIterator[list[Http]]:
    """`count` open waits, each on a job of its own that no worker runs; yields once every one has read its job."""
    setup = await Http.open(port)
    job_ids = []
    for _ in range(count):
        status, body = await setup.call("POST", "/v1/jobs", NOOP)
        assert status == 202, status
        job_ids.append(json.loads(body)["job_id"])
    setup.close()
    before = await lrange_calls(redis)  # each wait reads its job once (one LRANGE of its attempts) on arrival
    waiters: list[Http] = []
    for start in range(0, count, 200):
        batch = await asyncio.gather(*(Http.open(port) for _ in job_ids[start : start + 200]))
        for http, job_id in zip(batch, job_ids[start : start + 200], strict=True):
            http.send("GET", f"/v1/jobs/{job_id}/result?wait={WAIT_S}")
        waiters += batch

    async def all_waiting() -> bool:
        return await lrange_calls(redis) - before >= count

    try:
        await _until(all_waiting, 60, f"{count} waits")
        yield waiters
    finally:
        for http in waiters:
            http.close()


def _latency(name: str, latencies: list[float], statuses: Counter[int]) -> dict[str, Any]:
    return {
        f"{name}_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        f"{name}_p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
        f"{name}_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        f"{name}_max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        f"{name}_requests": len(latencies),
        f"{name}_statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def measure(args: argparse.Namespace, children: Children, redis_url: str) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    env = child_env(
        redis_url,
        JOB_MODULES=JOB_MODULES,
        LOG_LEVEL="WARNING",
        MAX_WAITS_PER_KEY=str(args.waiters + 100),  # loopback mode: every client here is the same key
        RESULT_WAIT_MAX_SECONDS=str(WAIT_S),
        MAX_JOBS="100",
    )
    port = free_port()
    api = children.spawn("live-api", ["-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port",
                                      str(port), "--log-level", "warning", "--backlog", "4096"], env)  # fmt: skip

    async def api_up() -> bool:
        if api.poll() is not None:
            raise RuntimeError(f"the API exited: {children.log_tail('live-api', 5)}")
        try:
            http = await Http.open(port)
        except OSError:
            return False
        try:
            return (await http.call("GET", "/health"))[0] == 200
        finally:
            http.close()

    result: dict[str, Any] = {"waiters": args.waiters}
    try:
        await _until(api_up, START_DEADLINE_S, "the API start")
        if args.e2e_only:
            await redis.flushall()
            return result | await end_to_end(args, children, redis, env, port)
        await paced(port, args.post_rate, 2, post_job)  # warm-up
        result |= _latency("post_alone", *await paced(port, args.post_rate, args.seconds, post_job))
        async with idle_waiters(port, redis, args.waiters):
            first, cpu = await commands(redis), process_cpu_s(api.pid)
            started = time.perf_counter()
            await asyncio.sleep(args.seconds)  # idle on purpose: what do waiters cost while nothing happens?
            elapsed = time.perf_counter() - started
            result["idle_commands_per_s"] = round((await commands(redis) - first - 1) / elapsed, 1)
            result["idle_api_cpu_percent"] = round((process_cpu_s(api.pid) - cpu) / elapsed * 100, 1)
            result |= _latency("post_with_waiters", *await paced(port, args.post_rate, args.seconds, post_job))
        await redis.flushall()
        result |= await end_to_end(args, children, redis, env, port)
    finally:
        await redis.aclose()
    return result


async def end_to_end(
    args: argparse.Namespace, children: Children, redis: Redis, env: dict[str, str], port: int
) -> dict[str, Any]:
    worker = children.spawn("live-worker", ["-m", "arq", "worker.WorkerSettings"], env)

    async def worker_ready() -> bool:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited: {children.log_tail('live-worker', 5)}")
        return int(await redis.zcard(keys.WORKERS)) >= 1

    await _until(worker_ready, START_DEADLINE_S, "the worker start")
    await paced(port, args.e2e_rate, 2, post_then_wait)  # warm-up
    WAIT_PARTS.clear()
    AFTER_END.clear()
    measured = _latency("e2e", *await paced(port, args.e2e_rate, args.seconds, post_then_wait))
    measured["e2e_wait_part_p50_ms"] = round(percentile(WAIT_PARTS, 0.50) * 1000, 2)
    measured["e2e_wait_part_p99_ms"] = round(percentile(WAIT_PARTS, 0.99) * 1000, 2)
    # finished_at has millisecond resolution: these two are good to about 1 ms.
    measured["e2e_answer_after_end_p50_ms"] = round(percentile(AFTER_END, 0.50) * 1000, 2)
    measured["e2e_answer_after_end_p99_ms"] = round(percentile(AFTER_END, 0.99) * 1000, 2)
    return measured


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data, Children(OUT / "logs") as children:
        server = start_redis(free_port(), Path(data), appendonly=False)
        children.adopt("live-redis", server.process)
        return await measure(args, children, server.url)


def run_fast(work: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed: the load generator must cost less than the API it measures."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiters", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--post-rate", type=float, default=50.0)
    parser.add_argument("--e2e-rate", type=float, default=100.0)
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end measure (2.)")
    args = parser.parse_args()
    result = run_fast(main_async(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
