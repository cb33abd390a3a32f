"""What authentication, limits and strict parsing cost `POST /v1/jobs`: the API before the security layer
(a git revision, exported to a temporary directory) and the API now (with a key presented, the rate limiter
and the body guard on), alternated on one Redis, measured with the benchmark's own raw HTTP client.

`python -m bench.security_cost --before 53633a5 [--rounds 3] [--duration 5]` prints one line per run and the
medians. Both run uvicorn the way `make bench` does (`uvicorn service.main:app`, one process). Each round runs
both, before first in odd rounds and after first in even ones; req/s and the API's CPU per request are both
measured after the client's warm-up.

Or a baseline of this tree's own API (bench/security_off.py says what each one removes), so the difference is
not every other change since an older revision:

- `--before checks-off` (`bench.security_off:checks_off`): the layer alone taken out (the Host check, security
  headers, keys, scopes, rate limit, body limits, strict parse and the kwargs check); the guard's request id,
  HTTP metrics and 500 handler stay, as they are issue 8's, not the layer.
- `--before unguarded` (`bench.security_off:app`): the whole guard taken out, issue 8's parts with it.
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
from typing import Any, TextIO

from core.embedded_redis import free_port, start_redis
from service.mint_key import mint

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"function": "noop", "kwargs": {}}'
WARMUP_S = 1.0  # the client's warm-up, left out of its req/s and of the API's CPU per request
# `--before` names for this tree's own API without the layer, and the app each one serves
BASELINES = {"checks-off": "bench.security_off:checks_off", "unguarded": "bench.security_off:app"}


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
) -> dict[str, Any]:
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
        load += ["--warmup", str(WARMUP_S)]
        running = subprocess.Popen(load, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        # CPU per request from the end of the client's warm-up on, as its req/s: a process's first requests pay
        # one-time work (the guard's route table, a function's schema validator) that is not the steady state.
        time.sleep(WARMUP_S)
        cpu_before, queued_before = cpu_seconds(api.pid), queued(redis_url)
        out, _ = running.communicate()
        if running.returncode:
            raise subprocess.CalledProcessError(running.returncode, load)
        result: dict[str, Any] = json.loads(out)
        answered = max(1, queued(redis_url) - queued_before)
        result["cpu_us_per_request"] = (cpu_seconds(api.pid) - cpu_before) / answered * 1e6
        return result
    finally:
        api.terminate()
        api.wait(10)


def compare(
    before: str, rounds: int, duration: float, redis_url: str, out: TextIO | None = None
) -> dict[str, dict[str, list[float]]]:
    """`rounds` rounds of before then after on the Redis at `redis_url` (flushed before each run), one line
    printed per run to `out` (standard output by default); returns req/s and API CPU µs per request, by system."""
    key, entry = mint("bench", ["enqueue"])
    with tempfile.TemporaryDirectory() as tmp:
        if before in BASELINES:
            before_tree, before_app = ROOT, BASELINES[before]
        else:
            before_tree, before_app = export(before, Path(tmp) / "before"), "service.main:app"
        systems = {
            "before": (before_tree, {}, [], before_app),
            "after": (
                ROOT,
                {"API_KEYS": json.dumps([entry.model_dump(mode="json")]), "RATE_LIMIT_PER_MINUTE": "1000000"},
                [f"Authorization: Bearer {key}"],
                "service.main:app",
            ),
        }
        rates: dict[str, list[float]] = {name: [] for name in systems}
        cpu: dict[str, list[float]] = {name: [] for name in systems}
        for round_ in range(1, rounds + 1):
            # before, after; then after, before: whatever running second does to a figure falls on both
            order = list(systems.items()) if round_ % 2 else list(systems.items())[::-1]
            for name, (tree, env_extra, headers, app) in order:
                subprocess.run(["redis-cli", "-u", redis_url, "FLUSHALL"], capture_output=True, check=False)
                result = run_once(tree, redis_url, env_extra, headers, duration, app)
                rates[name].append(result["rps"])
                cpu[name].append(result["cpu_us_per_request"])
                print(
                    f"round {round_} {name:6} {result['rps']:8.0f} req/s  "
                    f"{result['cpu_us_per_request']:6.0f} µs CPU/request  p50 {result['p50_ms']:.2f} ms  "
                    f"p99 {result['p99_ms']:.2f} ms  statuses {result['statuses']}  errors {result['errors']}",
                    file=out or sys.stdout,
                    flush=True,
                )
    return {"rps": rates, "cpu_us": cpu}


def summary(measured: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """Medians, and the medians of the per-round after/before ratios minus one (a cost is negative for req/s)."""
    rates, cpu = measured["rps"], measured["cpu_us"]
    # Each round ran before and after back to back, under the same load from whatever else the machine runs:
    # the median of the per-round ratios is steadier than the ratio of the medians.
    paired = statistics.median(a / b for a, b in zip(rates["after"], rates["before"], strict=True))
    cpu_paired = statistics.median(a / b for a, b in zip(cpu["after"], cpu["before"], strict=True))
    return {
        "before_rps": statistics.median(rates["before"]),
        "after_rps": statistics.median(rates["after"]),
        "paired_rps_change": paired - 1,
        "before_cpu_us": statistics.median(cpu["before"]),
        "after_cpu_us": statistics.median(cpu["after"]),
        "paired_cpu_change": cpu_paired - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before",
        required=True,
        help="git revision without the security layer, or this tree without it: `checks-off` (the layer alone) or "
        "`unguarded` (the whole guard, request ids and HTTP metrics too)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(free_port(), Path(tmp) / "redis", appendonly=False)
        try:
            figures = summary(compare(args.before, args.rounds, args.duration, redis.url))
        finally:
            redis.stop()
    before_rps, after_rps = figures["before_rps"], figures["after_rps"]
    print(
        f"median before {before_rps:.0f} req/s, after {after_rps:.0f} req/s: {100 * (after_rps / before_rps - 1):+.1f}%"
    )
    print(
        f"median of per-round ratios: throughput {100 * figures['paired_rps_change']:+.1f}%; API CPU per request "
        f"{figures['before_cpu_us']:.0f} -> {figures['after_cpu_us']:.0f} µs "
        f"({100 * figures['paired_cpu_change']:+.1f}%)"
    )


if __name__ == "__main__":
    main()
