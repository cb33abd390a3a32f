"""`make bench` / `python -m bench.run [--quick]`: raw arq (defaults, tuned) and the platform, in one run.

Starts its own redis-server on a free port (never the machine's 6379), runs interleaved rounds
(arq defaults, arq tuned, platform, arq defaults, ...), prints medians and ratios, then runs each issue's own
measurements as stages (bench/issue_stages.py), each printed with its targets and whether they were met, writes
`docs/benchmarks.md` and `docs/benchmarks.png` (`--quick` writes them under `bench/out/` instead), and
stops every process it started, on Ctrl-C or error too. It never fails on a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from arq.connections import ArqRedis

from bench import micro
from bench.children import OUT, ROOT, ChildFailed, Children, child_env
from bench.docs import write_markdown
from bench.issue_stages import FULL_ISSUES, QUICK_ISSUES, STAGES, IssueSizes, Stage, run_stage
from bench.measure import (
    FULL,
    QUICK,
    Bench,
    Problem,
    Sizes,
    e2e_latency,
    enqueue_rate,
    http_rate,
    stage,
    start_workers,
    timed_drain,
)
from bench.report import RoundResult, as_text, command_rows, summarize, table_rows, write_plot
from bench.systems import SYSTEMS, System
from core.embedded_redis import free_port, start_redis


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def drain_with(bench: Bench, system: System, workers: int, result: RoundResult, *, latency: bool) -> None:
    """Stage a backlog, start `workers` processes, time the drain; with one worker, measure latency after."""
    await bench.redis.flushall()
    ids = await stage(bench, system, min(bench.sizes.drain_jobs, system.drain_jobs_cap or bench.sizes.drain_jobs))
    processes, startup_s = await start_workers(bench, system, workers)
    try:
        drained = await timed_drain(bench, system, ids, processes)
        result.metrics[f"drain_{workers}"] = drained["rate"]
        result.metrics[f"drain_{workers}_redis_cpu_pct"] = drained["redis_cpu_pct"]
        result.metrics[f"drain_{workers}_workers_cpu_pct"] = drained["workers_cpu_pct"]
        result.metrics[f"drain_{workers}_commands"] = sum(drained["commands"].values())
        log(
            f"  drain, {workers} worker(s): {drained['rate']:,.0f} jobs/s (first pickup "
            f"{drained['first_pickup_ms']:.0f} ms; CPU: redis {drained['redis_cpu_pct']:.0f}%, "
            f"workers {drained['workers_cpu_pct']:.0f}%)"
        )
        if workers == 1:
            result.metrics["worker_startup_s"] = startup_s
            result.metrics["first_pickup_ms"] = drained["first_pickup_ms"]
            result.worker_commands = drained["commands"]
            result.metrics["worker_commands"] = sum(drained["commands"].values())
            result.metrics["worker_log_bytes"] = drained["log_bytes_per_job"]
        if latency:
            await bench.redis.flushall()
            measured = await e2e_latency(bench, system)
            result.metrics.update(measured)
            log(
                f"  end-to-end at {bench.sizes.latency_rate:.0f}/s: p50 {measured['e2e_p50_ms']:.1f} ms, "
                f"p95 {measured['e2e_p95_ms']:.1f} ms, p99 {measured['e2e_p99_ms']:.1f} ms"
            )
    finally:
        bench.children.stop(*processes)
    await bench.redis.flushall()


async def system_round(bench: Bench, system: System, round_no: int) -> RoundResult:
    result = RoundResult(system.key, round_no)
    log(f"round {round_no}, {system.label}")

    async def attempt(name: str, step: Awaitable[None]) -> None:
        """A measurement that fails is a note in the report, never the end of the run (Ctrl-C still is)."""
        try:
            await step
        except Problem as exc:
            result.notes.append(f"{name}: {exc}")
            log(f"  {name} skipped: {exc}")
        except Exception as exc:
            result.notes.append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"  {name} failed: {type(exc).__name__}: {exc}")

    async def pool_enqueue() -> None:
        result.metrics.update(await enqueue_rate(bench, system))
        log(f"  enqueue via the pool: {result.metrics['enqueue_per_s']:,.0f} jobs/s")

    async def http() -> None:
        measured = await http_rate(bench, system)
        result.metrics.update(measured)
        log(
            f"  POST /v1/jobs: {measured['http_rps']:,.0f} req/s, p50 {measured['http_p50_ms']:.1f} ms, "
            f"p99 {measured['http_p99_ms']:.1f} ms (httpx client: {measured['httpx_rps']:,.0f} req/s)"
        )

    await attempt("enqueue", pool_enqueue())
    if system.http_app:
        await attempt("http", http())
    await attempt("drain, 1 worker", drain_with(bench, system, 1, result, latency=True))
    if system.scaling:
        for workers in bench.sizes.scale_workers:
            await attempt(f"drain, {workers} workers", drain_with(bench, system, workers, result, latency=False))
        if "drain_2" in result.metrics and result.metrics.get("drain_1"):
            result.metrics["scale_2"] = result.metrics["drain_2"] / result.metrics["drain_1"]
    return result


async def run_all(
    children: Children, redis_url: str, sizes: Sizes, systems: list[System]
) -> tuple[list[RoundResult], dict[str, str], list[str]]:
    redis = ArqRedis.from_url(redis_url)
    try:
        server: dict[str, Any] = await redis.info("server")
        facts = machine_facts(str(server.get("redis_version", "?")))
        bench = Bench(children, redis, redis_url, sizes)
        results: list[RoundResult] = []
        for round_no in range(1, sizes.rounds + 1):
            for system in systems:
                results.append(await system_round(bench, system, round_no))
        return results, facts, bench.notes
    finally:
        await redis.aclose()


def run_micro(children: Children, redis_url: str) -> tuple[list[micro.Micro], list[str]]:
    """`python -m bench.micro` in its own process, since it sets up logging the way the worker does."""
    try:
        data = children.run_json("micro", ["-m", "bench.micro"], child_env(redis_url), timeout_s=120)
    except ChildFailed as exc:
        return [], [f"micro-benchmarks: {exc}"]
    pieces = [
        (str(label), float(ours), None if theirs is None else float(theirs)) for label, ours, theirs in data["pieces"]
    ]
    return pieces, [str(note) for note in data["notes"]]


def run_issue_stages(children: Children, redis_url: str, sizes: IssueSizes) -> list[Stage]:
    """Each issue's own measurements, one stage after another, each printed with its targets as it ends."""
    stages = []
    for spec in STAGES:
        log(f"issue {', '.join(str(n) for n in spec.issues)}: {spec.title} ({spec.command(sizes)})")
        started = time.monotonic()
        measured = run_stage(spec, children, redis_url, sizes)
        print(f"\nissue {', '.join(str(n) for n in spec.issues)}: {spec.title}, {time.monotonic() - started:.0f} s")
        if measured.figures:
            print(as_text(measured.rows()))
        for note in measured.notes:
            print(f"note: {note}")
        sys.stdout.flush()
        stages.append(measured)
    return stages


def machine_facts(redis_version: str) -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "load average at start (1, 5, 15 min)": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis-server": redis_version,
        "arq": version("arq"),
        "redis-py": version("redis"),
        "hiredis": version("hiredis") if _installed("hiredis") else "not installed",
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
        "platform code": _git_state(),
    }


def code_fingerprint() -> str:
    """A hash of the platform's source as it is on disk (committed or not), to notice edits during a run."""
    digest = hashlib.sha1(usedforsecurity=False)
    files = [ROOT / "worker.py", ROOT / "settings.py"]
    for folder in ("core", "service", "jobs"):
        files += sorted((ROOT / folder).rglob("*.py"))
    for path in files:
        with suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _git_state() -> str:
    """The commit measured, and whether the platform's files had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "core", "service", "jobs", "worker.py", "settings.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    state = f"{head} + uncommitted changes" if dirty else head
    return f"{state} (source hash {code_fingerprint()})"


def _installed(name: str) -> bool:
    try:
        version(name)
    except Exception:
        return False
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one short round and small issue stages (a few minutes), output under bench/out/",
    )
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--systems", help="comma-separated subset of: " + ", ".join(s.key for s in SYSTEMS))
    parser.add_argument("--no-issues", action="store_true", help="skip the issues' own stages (8 to 11)")
    parser.add_argument("--out", type=Path, help="where benchmarks.md and benchmarks.png go (default: docs/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes: Sizes = QUICK if args.quick else FULL
    issue_sizes = QUICK_ISSUES if args.quick else FULL_ISSUES
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds)
    systems = [s for s in SYSTEMS if not args.systems or s.key in args.systems.split(",")]
    docs_dir: Path = args.out or (OUT if args.quick else ROOT / "docs")
    command = os.environ.get("BENCH_COMMAND") or "python -m bench.run " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    log_dir = OUT / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    started = time.monotonic()
    fingerprint = code_fingerprint()
    try:
        with Children(log_dir) as children:
            redis = start_redis(free_port(), OUT / "redis", appendonly=False, log_file=log_dir / "redis.log")
            children.adopt("redis", redis.process)
            log(f"redis-server {redis.url} (pid {redis.process.pid}); logs in {log_dir.relative_to(ROOT)}")
            results, facts, notes = asyncio.run(run_all(children, redis.url, sizes, systems))
            log("in-process CPU costs (bench/micro.py)")
            pieces, micro_notes = run_micro(children, redis.url)
            notes += micro_notes
            summary = summarize(results, systems)
            print()
            print(as_text(table_rows(summary)))
            print()
            print(as_text(command_rows(summary)))
            if pieces:
                print()
                print(as_text(micro.rows(pieces)))
            notes += [f"round {r.round}, {r.system}: {note}" for r in results for note in r.notes]
            for note in notes:
                print(f"note: {note}")
            stages = [] if args.no_issues else run_issue_stages(children, redis.url, issue_sizes)
    except KeyboardInterrupt:
        log("interrupted: every process the benchmark started has been stopped")
        return 130
    elapsed_s = time.monotonic() - started
    if code_fingerprint() != fingerprint:
        notes.append("the platform's source changed on disk during this run: its figures may mix versions")
    print(f"\n{sizes.rounds} round(s), medians; took {elapsed_s:.0f} s; command: {command}")
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "facts": facts,
                "sizes": asdict(sizes),
                "results": [asdict(r) for r in results],
                "issue_sizes": asdict(issue_sizes),
                "issue_stages": [asdict(s) for s in stages],
            },
            indent=1,
        )
    )
    plotted = write_plot(summary, docs_dir / "benchmarks.png")
    write_markdown(
        docs_dir / "benchmarks.md", summary, facts, sizes, command, elapsed_s, plotted, notes, pieces, stages
    )
    log(
        f"wrote {docs_dir / 'benchmarks.md'}"
        + (f" and {docs_dir / 'benchmarks.png'}" if plotted else " (no matplotlib: no plot)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
