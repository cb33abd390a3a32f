"""What typed endpoints and the route handle cost per enqueue, over HTTP on one uvicorn process.

`python -m bench.embed_overhead [--rounds 3] [--duration 6] [--baseline-dir DIR]` starts a throwaway
redis-server and `uvicorn bench.embed_app:app`, then loads each endpoint in turn with `bench.http_load` (raw
client), round-robin so drift hits every variant alike, and prints the median requests/s and p50/p99 of each,
relative to the generic `POST /v1/jobs`. `--baseline-dir` (a checkout of an older commit) adds that tree's
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
VARIANTS = [
    GENERIC,
    ("POST /v1/functions/record_analytics_event/jobs", "/v1/functions/record_analytics_event/jobs", ARGS),
    ("user route, core.enqueue directly", "/direct", "{}"),
    ("user route, JobsDep now", "/handle/now", "{}"),
    ("user route, JobsDep on_success", "/handle/on_success", "{}"),
    ("user route, JobsDep after_response", "/handle/after_response", "{}"),
]


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
        variants = [(name, servers[0][1] + path, body) for name, path, body in VARIANTS]
        if args.baseline_dir:
            servers.append(serve("service.main:app", args.baseline_dir.resolve(), redis.url))
            variants.insert(0, (f"baseline {GENERIC[0]}", servers[1][1] + GENERIC[1], GENERIC[2]))
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
        try:
            for _ in range(args.rounds):
                for name, url, body in variants:
                    httpx.post(url, content=body, headers={"Content-Type": "application/json"})  # warm path
                    runs[name].append(load(url, body, args.duration))
                    redis_flush(redis.url)
        finally:
            for process, _ in servers:
                process.terminate()
                process.wait()
            redis.stop()
    reference = statistics.median(r["rps"] for r in runs[GENERIC[0]])
    print(f"{'endpoint':48} {'req/s':>8} {'vs generic':>10} {'p50 ms':>7} {'p99 ms':>7}  (median of {args.rounds})")
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        p50 = statistics.median(r["p50_ms"] for r in results)
        p99 = statistics.median(r["p99_ms"] for r in results)
        print(f"{name:48} {rps:8.0f} {100 * (rps / reference - 1):+9.1f}% {p50:7.2f} {p99:7.2f}")


def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


if __name__ == "__main__":
    main()
