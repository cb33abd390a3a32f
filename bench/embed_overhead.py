"""What typed endpoints and the route handle cost per enqueue, over HTTP on one uvicorn process.

`python -m bench.embed_overhead [--rounds 3] [--duration 6] [--baseline-dir DIR]` starts a throwaway
redis-server and `uvicorn bench.embed_app:app`, then loads each endpoint in turn with `bench.http_load` (raw
client), round-robin so drift hits every variant alike, and prints the median requests/s and p50/p99 of each,
relative to the generic `POST /v1/jobs`, and the API process's CPU time per enqueue (its CPU over the run
divided by the jobs it wrote: steadier than requests/s on a shared machine), as the median over rounds of the
per-round ratio to what the variant is compared with: the typed endpoint with `POST /v1/jobs`, the route
handle with a route calling `core.enqueue`. `--baseline-dir` (a checkout of an older commit) adds that tree's
`POST /v1/jobs`, served from there, as a row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from core.embedded_redis import free_port, start_redis

ROOT = Path(__file__).resolve().parents[1]
ARGS = '{"event": "signup", "properties": {"plan": "pro", "seats": 3}}'
GENERIC = ("POST /v1/jobs", "/v1/jobs", f'{{"function": "record_analytics_event", "kwargs": {ARGS}}}')
DIRECT = "user route, core.enqueue directly"
VARIANTS = [
    GENERIC,
    ("POST /v1/functions/record_analytics_event/jobs", "/v1/functions/record_analytics_event/jobs", ARGS),
    (DIRECT, "/direct", "{}"),
    ("user route, JobsDep now", "/handle/now", "{}"),
    ("user route, JobsDep on_success", "/handle/on_success", "{}"),
    ("user route, JobsDep after_response", "/handle/after_response", "{}"),
]
BASES = {VARIANTS[1][0]: GENERIC[0], **{name: DIRECT for name, _, _ in VARIANTS[3:]}}


def serve(app: str, cwd: Path, redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "JOB_MODULES": "jobs",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(cwd),
    }
    argv = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(argv, cwd=cwd, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/health").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"{app} did not start")
        time.sleep(0.1)


def load(url: str, body: str, duration: float) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.http_load", "--url", url, "--body", body, "--duration", str(duration)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, check=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--baseline-dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        redis = start_redis(free_port(), Path(data), appendonly=False)
        servers = [serve("bench.embed_app:app", ROOT, redis.url)]
        variants = [(name, servers[0], path, body) for name, path, body in VARIANTS]
        if args.baseline_dir:
            servers.append(serve("service.main:app", args.baseline_dir.resolve(), redis.url))
            variants.insert(0, (f"baseline {GENERIC[0]}", servers[1], GENERIC[1], GENERIC[2]))
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in variants}
        try:
            for _ in range(args.rounds):
                for name, (process, base_url), path, body in variants:
                    url = base_url + path
                    httpx.post(url, content=body, headers={"Content-Type": "application/json"})  # warm path
                    redis_flush(redis.url)
                    cpu_before = cpu_seconds(process.pid)
                    run = load(url, body, args.duration)
                    time.sleep(0.05)  # the last window of after_response releases
                    run["cpu_us"] = (cpu_seconds(process.pid) - cpu_before) / max(1, jobs_written(redis.url)) * 1e6
                    runs[name].append(run)
        finally:
            for process, _ in servers:
                process.terminate()
                process.wait()
            redis.stop()
    reference = statistics.median(r["rps"] for r in runs[GENERIC[0]])
    print(
        f"{'endpoint':48} {'req/s':>8} {'vs generic':>10} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs':>7} "
        f"{'CPU cost':>8}  vs (median of {args.rounds})"
    )
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        p50 = statistics.median(r["p50_ms"] for r in results)
        p99 = statistics.median(r["p99_ms"] for r in results)
        cpu = statistics.median(r["cpu_us"] for r in results)
        base = BASES.get(name)
        cost = ""
        if base is not None:
            ratio = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(results, runs[base], strict=True))
            cost = f"{100 * (ratio - 1):+7.1f}%"
        print(
            f"{name:48} {rps:8.0f} {100 * (rps / reference - 1):+9.1f}% {p50:7.2f} {p99:7.2f} {cpu:7.0f} "
            f"{cost:>8}  {base or ''}"
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def jobs_written(url: str) -> int:
    import redis

    written: int = redis.Redis.from_url(url).zcard("arq:queue")  # type: ignore[assignment]  # sync client
    return written


def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


if __name__ == "__main__":
    main()
