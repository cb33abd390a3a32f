"""What authentication, limits and strict parsing cost `POST /v1/jobs`: the API before the security layer
(a git revision, exported to a temporary directory) and the API now (with a key presented, the rate limiter
and the body guard on), alternated on one Redis, measured with the benchmark's own raw HTTP client.

`python -m bench.security_cost --before 53633a5 [--rounds 3] [--duration 5]` prints one line per run and the
medians. Both run uvicorn the way `make bench` does (`uvicorn service.main:app`, one process).

`--before unguarded` compares with this tree's own API with the layer taken out (`bench.security_off:app`),
so the difference is the layer alone, not every other change since an older revision.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from io import BytesIO
from pathlib import Path

from core.embedded_redis import free_port, start_redis
from service.mint_key import mint

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"function": "noop", "kwargs": {}}'


def export(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def wait_healthy(port: int, deadline_s: float = 20) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the API on port {port} did not answer")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): unlike req/s, not skewed by other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queued(redis_url: str) -> int:
    answer = subprocess.run(["redis-cli", "-u", redis_url, "ZCARD", "arq:queue"], capture_output=True, text=True)
    return int(answer.stdout.strip() or 0)


def run_once(
    tree: Path, redis_url: str, env_extra: dict[str, str], headers: list[str], duration: float, app: str
) -> dict:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")}
    env.update(REDIS_URL=redis_url, JOB_MODULES="jobs,bench.noop_jobs", LOG_LEVEL="WARNING", PYTHONPATH=str(tree))
    env.update(env_extra)
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    api = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port)
        load = [sys.executable, "-m", "bench.http_load", "--url", f"http://127.0.0.1:{port}/v1/jobs"]
        load += ["--body", BODY, "--duration", str(duration), "--concurrency", "16"]
        for header in headers:
            load += ["--header", header]
        cpu_before = cpu_seconds(api.pid)
        out = subprocess.run(load, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        result: dict = json.loads(out)
        result["cpu_us_per_request"] = (cpu_seconds(api.pid) - cpu_before) / max(1, queued(redis_url)) * 1e6
        return result
    finally:
        api.terminate()
        api.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", required=True, help="git revision without the security layer, or `unguarded` (this tree without it)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    key, entry = mint("bench", ["enqueue"])
    with tempfile.TemporaryDirectory() as tmp:
        if args.before == "unguarded":
            before, before_app = ROOT, "bench.security_off:app"
        else:
            before, before_app = export(args.before, Path(tmp) / "before"), "service.main:app"
        redis = start_redis(free_port(), Path(tmp) / "redis", appendonly=False)
        try:
            systems = {
                "before": (before, {}, [], before_app),
                "after": (
                    ROOT,
                    {"API_KEYS": json.dumps([entry.model_dump(mode="json")]), "RATE_LIMIT_PER_MINUTE": "1000000"},
                    [f"Authorization: Bearer {key}"],
                    "service.main:app",
                ),
            }
            rates: dict[str, list[float]] = {name: [] for name in systems}
            cpu: dict[str, list[float]] = {name: [] for name in systems}
            for round_ in range(1, args.rounds + 1):
                for name, (tree, env_extra, headers, app) in systems.items():
                    subprocess.run(["redis-cli", "-u", redis.url, "FLUSHALL"], capture_output=True, check=False)
                    result = run_once(tree, redis.url, env_extra, headers, args.duration, app)
                    rates[name].append(result["rps"])
                    cpu[name].append(result["cpu_us_per_request"])
                    print(
                        f"round {round_} {name:6} {result['rps']:8.0f} req/s  "
                        f"{result['cpu_us_per_request']:6.0f} µs CPU/request  p50 {result['p50_ms']:.2f} ms  "
                        f"p99 {result['p99_ms']:.2f} ms  statuses {result['statuses']}  errors {result['errors']}",
                        flush=True,
                    )
        finally:
            redis.stop()
    before_rps, after_rps = statistics.median(rates["before"]), statistics.median(rates["after"])
    print(
        f"median before {before_rps:.0f} req/s, after {after_rps:.0f} req/s: {100 * (after_rps / before_rps - 1):+.1f}%"
    )
    # Each round ran before and after back to back, under the same load from whatever else the machine runs:
    # the median of the per-round ratios is steadier than the ratio of the medians.
    paired = statistics.median(a / b for a, b in zip(rates["after"], rates["before"], strict=True))
    cpu_paired = statistics.median(a / b for a, b in zip(cpu["after"], cpu["before"], strict=True))
    print(
        f"median of per-round ratios: throughput {100 * (paired - 1):+.1f}%; API CPU per request "
        f"{statistics.median(cpu['before']):.0f} -> {statistics.median(cpu['after']):.0f} µs "
        f"({100 * (cpu_paired - 1):+.1f}%)"
    )


if __name__ == "__main__":
    main()
