"""Where a worker's (or the API's) time goes: `python -m bench.profile [--jobs N] [--systems ...]`.

Not part of `make bench`. For each system it drains a backlog with one worker twice: once under py-spy
(sampling, little overhead; CPU share by library, when the `py-spy` binary is on the PATH or in the
virtualenv) and once under cProfile (exact call counts: Redis round trips per job, top functions by own
time). With `--http` it also samples the uvicorn process under the benchmark's HTTP load.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from arq.connections import ArqRedis

from bench.children import OUT, Children
from bench.measure import FULL, Bench, http_rate, stage, start_workers, timed_drain
from bench.systems import ARQ_TUNED, PLATFORM, SYSTEMS, System
from core.embedded_redis import free_port, start_redis

# First match wins, checked on the innermost frame first: "own" time by library.
CATEGORIES = [
    ("structlog / logging", ("structlog/", "logging/")),
    ("pydantic", ("pydantic",)),
    ("codec (orjson, pickle, arq serialize)", ("core/codec.py", "pickle", "arq/jobs.py")),
    ("redis-py", ("redis/",)),
    ("asyncio (event loop, tasks, streams)", ("asyncio/", "selectors.py", "uvloop")),
    ("arq worker", ("arq/",)),
    ("platform core/", ("core/",)),
    ("fastapi / starlette", ("fastapi/", "starlette/")),
    ("uvicorn / httptools", ("uvicorn/", "httptools")),
]
IDLE = ("EpollSelector.select", "select (", "Condition.wait", "Event.wait", "Runner.run (asyncio/runners.py")
# Inclusive shares worth knowing: time spent anywhere below these frames.
INCLUSIVE = [
    ("logging calls (structlog + stdlib), inclusive", ("structlog/", "logging/__init__.py")),
    ("threadpool hand-offs (anyio to_thread), inclusive", ("to_thread", "run_in_threadpool", "run_sync_in_worker")),
    ("pydantic, inclusive", ("pydantic",)),
    ("redis-py, inclusive", ("redis/",)),
]


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def summarize_stacks(path: Path) -> list[tuple[str, float]]:
    """Share of CPU samples by the library of the innermost frame, plus a few inclusive shares."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(mark in frames[-1] for mark in IDLE):
            continue  # waiting (for Redis, a client, or work in an idle thread), not CPU
        total += count
        for frame in reversed(frames):
            label = next((name for name, marks in CATEGORIES if any(m in frame for m in marks)), None)
            if label:
                own[label] += count
                break
        else:
            own["other"] += count
        for name, marks in INCLUSIVE:
            if any(any(m in frame for m in marks) for frame in frames):
                inclusive[name] += count
    if not total:
        return []
    shares = [(name, 100 * n / total) for name, n in own.most_common()]
    return shares + [(name, 100 * inclusive[name] / total) for name, _ in INCLUSIVE]


def summarize_cprofile(path: Path, jobs: int, top: int = 15) -> list[str]:
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    sends = sum(v[1] for (file, _, name), v in raw.items() if name == "send_packed_command" and "redis" in file)
    lines = [f"Redis round trips per job (send_packed_command calls / jobs): {sends / jobs:.2f}"]
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    lines.append(f"top {top} functions by own time (calls per job, own µs per job):")
    for (file, line, name), (_, calls, own_s, _, _) in ranked:
        short = "/".join(Path(file).parts[-2:])
        lines.append(f"  {calls / jobs:7.2f}  {own_s / jobs * 1e6:7.1f} µs  {name} ({short}:{line})")
    return lines


async def sample_worker(bench: Bench, system: System, jobs: int, spy: str) -> Path:
    out = OUT / f"profile-{system.key}-worker.txt"
    await bench.redis.flushall()
    ids = await stage(bench, system, jobs)
    processes, _ = await start_workers(bench, system, 1)
    recorder = bench.children.spawn_raw(
        "py-spy", [spy, "record", "--pid", str(processes[0].pid), "--format", "raw", "--rate", "500", "-o", str(out)]
    )
    try:
        await asyncio.sleep(0.5)
        drained = await timed_drain(bench, system, ids, processes)
        print(f"  {system.key}: {drained['rate']:,.0f} jobs/s while sampled")
    finally:
        recorder.send_signal(signal.SIGINT)
        await asyncio.to_thread(recorder.wait, 30)
        bench.children.stop(recorder, *processes)
    return out


async def cprofile_worker(bench: Bench, system: System, jobs: int) -> Path:
    out = OUT / f"profile-{system.key}-worker.prof"
    profiled = replace(system, worker_argv=["-m", "cProfile", "-o", str(out), *system.worker_argv])
    await bench.redis.flushall()
    ids = await stage(bench, system, jobs)
    processes, _ = await start_workers(bench, profiled, 1)
    try:
        drained = await timed_drain(bench, system, ids, processes)
        print(f"  {system.key}: {drained['rate']:,.0f} jobs/s under cProfile")
    finally:
        bench.children.stop(*processes)  # arq exits cleanly on SIGTERM, so cProfile writes its file
    return out


async def sample_api(bench: Bench, system: System, spy: str) -> Path | None:
    """py-spy on uvicorn while the raw client loads it (the benchmark's own HTTP measurement)."""
    out = OUT / f"profile-{system.key}-api.txt"
    recorders: list[subprocess.Popen[bytes]] = []

    def attach(api: subprocess.Popen[bytes]) -> None:
        command = [spy, "record", "--pid", str(api.pid), "--format", "raw", "--rate", "500", "-o", str(out)]
        recorders.append(bench.children.spawn_raw("py-spy-api", command))

    try:
        measured = await http_rate(bench, system, on_api_ready=attach)
        print(f"  {system.key} API: {measured['http_rps']:,.0f} req/s while sampled")
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
            await asyncio.to_thread(recorder.wait, 30)
            bench.children.stop(recorder)
    return out if out.exists() else None


async def run(children: Children, redis_url: str, jobs: int, systems: list[System], http: bool) -> None:
    redis = ArqRedis.from_url(redis_url)
    bench = Bench(children, redis, redis_url, FULL)
    spy = py_spy()
    try:
        for system in systems:
            print(f"{system.label}")
            if spy:
                path = await sample_worker(bench, system, jobs, spy)
                if path.exists():
                    print(f"  worker CPU samples by library ({path.relative_to(OUT.parent.parent)}):")
                    for name, share in summarize_stacks(path):
                        print(f"    {share:5.1f}%  {name}")
            path = await cprofile_worker(bench, system, jobs)
            if path.exists():
                for line in summarize_cprofile(path, jobs):
                    print(f"  {line}")
            if http and spy and system.http_app:
                api_path = await sample_api(bench, system, spy)
                if api_path:
                    print("  API CPU samples by library:")
                    for name, share in summarize_stacks(api_path):
                        print(f"    {share:5.1f}%  {name}")
        for note in bench.notes:
            print(f"note: {note}")
    finally:
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--systems", default=f"{ARQ_TUNED.key},{PLATFORM.key}")
    parser.add_argument("--http", action="store_true", help="also sample the uvicorn process under load")
    args = parser.parse_args()
    systems = [s for s in SYSTEMS if s.key in args.systems.split(",")]
    if not py_spy():
        print("py-spy not found (pip install py-spy): cProfile only", file=sys.stderr)
    started = time.monotonic()
    with Children(OUT / "logs") as children:
        redis = start_redis(free_port(), OUT / "redis", appendonly=False, log_file=OUT / "logs" / "redis.log")
        children.adopt("redis", redis.process)
        asyncio.run(run(children, redis.url, args.jobs, systems, args.http))
    print(f"took {time.monotonic() - started:.0f} s; raw profiles in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
