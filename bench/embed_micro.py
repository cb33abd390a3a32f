"""Server-side cost of one enqueue per endpoint, in process: `python -m bench.embed_micro [--requests 500]
[--rounds 15] [--json]`. Calls the ASGI app directly (no HTTP client, no network; the Redis round trips are real, to a
throwaway redis-server), interleaving the variants round by round, and prints per request the best round's
wall time and the median CPU time of the API process (which the Redis round trip does not blur), each with
its cost over what it is compared with, as the median over rounds of the per-round ratio (the variants of a
round ran back to back, under the same load from whatever else the machine runs): the typed endpoint against
`POST /v1/jobs`, the route handle against `core.enqueue` called in a route.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.embedded_redis import free_port, start_redis

ARGS = b'{"event": "signup", "properties": {"plan": "pro", "seats": 3}}'
VARIANTS: list[tuple[str, str, bytes, str | None]] = [
    ("POST /v1/jobs", "/v1/jobs", b'{"function": "record_analytics_event", "kwargs": ' + ARGS + b"}", None),
    ("POST /v1/functions/{name}/jobs", "/v1/functions/record_analytics_event/jobs", ARGS, "POST /v1/jobs"),
    ("route: core.enqueue", "/direct", b"", None),
    ("route: core.enqueue, PoolDep", "/direct/deps", b"", "route: core.enqueue"),
    ("route: JobsDep now", "/handle/now", b"", "route: core.enqueue"),
    ("route: JobsDep on_success", "/handle/on_success", b"", "route: core.enqueue"),
    ("route: JobsDep after_response", "/handle/after_response", b"", "route: core.enqueue"),
]


async def call(app: Any, path: str, body: bytes) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": app_state,
    }  # fmt: skip
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


app_state: dict[str, Any] = {}


async def run(requests: int, rounds: int) -> list[dict[str, Any]]:
    """Per variant: the best round's wall µs and the median API CPU µs per request, and each one's cost over
    its base (the median over rounds of the per-round ratio, minus one; None for a variant without a base)."""
    from asgi_lifespan import LifespanManager

    from bench.embed_app import app

    async with LifespanManager(app) as manager:
        app_state.update(manager._state)
        pool = app_state["pool"]
        timings: dict[str, list[float]] = {name: [] for name, *_ in VARIANTS}
        cpu_timings: dict[str, list[float]] = {name: [] for name, *_ in VARIANTS}
        for _ in range(rounds):
            for name, path, body, _base in VARIANTS:
                assert await call(app, path, body) in (200, 202), name
                started, cpu = time.perf_counter(), time.process_time()
                for _ in range(requests):
                    await call(app, path, body)
                timings[name].append((time.perf_counter() - started) / requests * 1e6)
                cpu_timings[name].append((time.process_time() - cpu) / requests * 1e6)
                await pool.flushdb()

    def cost(values: dict[str, list[float]], name: str, base: str | None) -> float | None:
        # Per round, then the median: a round's variants ran back to back, under the same load.
        if base is None:
            return None
        return statistics.median(a / b for a, b in zip(values[name], values[base], strict=True)) - 1

    return [
        {
            "variant": name,
            "base": base,
            "wall_us": min(timings[name]),
            "wall_cost": cost(timings, name, base),
            "cpu_us": statistics.median(cpu_timings[name]),
            "cpu_cost": cost(cpu_timings, name, base),
        }
        for name, _path, _body, base in VARIANTS
    ]


def report(rows: list[dict[str, Any]]) -> None:
    def pct(value: float | None) -> str:
        return "" if value is None else f"{100 * value:+6.1f}%"

    print(f"{'variant':32} {'wall µs':>8} {'cost':>7} {'API CPU µs':>11} {'cost':>7}  vs")
    for row in rows:
        print(
            f"{row['variant']:32} {row['wall_us']:8.1f} {pct(row['wall_cost']):>7} {row['cpu_us']:11.1f} "
            f"{pct(row['cpu_cost']):>7}  {row['base'] or ''}"
        )


# A child process that measures `POST /v1/jobs` of `service.main:app` in the tree it runs in (its cwd), so an
# older checkout is measured by the same procedure: prints "wall_us cpu_us".
CHILD = """
import asyncio, sys, time
sys.path.insert(0, ".")
from asgi_lifespan import LifespanManager
from service.main import app
import bench_embed_micro_child as m

async def main():
    async with LifespanManager(app) as manager:
        m.app_state.update(manager._state)
        body = m.VARIANTS[0][2]
        for _ in range(100):
            await m.call(app, "/v1/jobs", body)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(int(sys.argv[1])):
            await m.call(app, "/v1/jobs", body)
        n = int(sys.argv[1])
        print((time.perf_counter() - started) / n * 1e6, (time.process_time() - cpu) / n * 1e6)
        await manager._state["pool"].flushdb()

asyncio.run(main())
"""


def compare_trees(baseline: Path, requests: int, rounds: int) -> None:
    """`POST /v1/jobs` in this tree against the same endpoint in `baseline`, one fresh process per round."""
    import shutil
    import subprocess
    import sys

    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "this tree": []}
    with tempfile.TemporaryDirectory() as helper:
        shutil.copy(Path(__file__), Path(helper) / "bench_embed_micro_child.py")
        for _ in range(rounds):
            for name, tree in (("baseline", baseline), ("this tree", Path(__file__).resolve().parents[1])):
                env = {**os.environ, "PYTHONPATH": f"{tree}:{helper}"}
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(requests)], cwd=tree, env=env, capture_output=True, check=True
                ).stdout.split()
                results[name].append((float(out[0]), float(out[1])))
    for index, label in ((0, "wall"), (1, "API CPU")):
        base = [r[index] for r in results["baseline"]]
        this = [r[index] for r in results["this tree"]]
        ratio = statistics.median(a / b for a, b in zip(this, base, strict=True))
        print(
            f"POST /v1/jobs {label:8} µs: baseline {statistics.median(base):7.1f}, this tree "
            f"{statistics.median(this):7.1f}, cost {100 * (ratio - 1):+5.1f}% (median of {rounds} paired rounds)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline-dir", type=Path, help="also compare POST /v1/jobs with this older checkout")
    parser.add_argument("--json", action="store_true", help="print the variants' figures as one JSON list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        redis = start_redis(free_port(), Path(data), appendonly=False)
        os.environ.update(REDIS_URL=redis.url, JOB_MODULES="jobs", LOG_LEVEL="WARNING")
        try:
            rows = asyncio.run(run(args.requests, args.rounds))
            if args.json:
                json.dump(rows, sys.stdout)
            else:
                report(rows)
            if args.baseline_dir:
                compare_trees(args.baseline_dir.resolve(), args.requests * 4, args.rounds)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
