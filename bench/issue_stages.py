"""The issues' own measurements (8 to 11) as stages of `make bench`, after raw arq against the platform.

Each stage calls the functions of the issue's script (`bench.live`, `bench.log_cost`, `bench.drain`,
`bench.security_cost`), or runs the script in a process of its own when it patches the process it runs in
(`bench.security_micro` takes the guard out of every route, `bench.embed_micro` builds its app from the
environment at import), and turns the figures into rows: the figure, the issue's target and whether it was
met. Nothing here fails on a timing; a stage that cannot be taken is a note.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import drain, flow, live, log_cost, security_cost
from bench.children import Children, child_env

ISSUE_TITLES = {
    8: "results pushed, not polled; logs that cost less",
    9: "what authentication, limits and strict parsing cost `POST /v1/jobs`",
    10: "what the typed endpoints and the route handle cost an enqueue",
    11: "workflows cost nothing to a job that uses none of them",
}


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target, or one a single run cannot judge

    def cells(self) -> list[str]:
        met = {True: "yes", False: "**no**", None: "not judged" if self.target else ""}[self.met]
        return [self.label, self.value, self.target, met]


@dataclass
class Stage:
    issues: tuple[int, ...]
    title: str
    command: str  # the same measurement alone, at these sizes
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[list[str]]:
        return [["figure", "this run", "target", "met"], *(figure.cells() for figure in self.figures)]


@dataclass(frozen=True)
class IssueSizes:
    waiters: int
    live_seconds: float
    log_rounds: int
    log_jobs: int
    drain_rounds: int
    drain_jobs: int
    security_rounds: int
    security_duration_s: float
    security_micro_batches: int
    embed_requests: int
    embed_rounds: int
    flow_seconds: float
    flow_backlog: int
    flow_rounds: int


FULL_ISSUES = IssueSizes(2000, 10.0, 5, 5000, 3, 5000, 9, 4.0, 40, 500, 15, 30.0, 10_000, 5)
QUICK_ISSUES = IssueSizes(200, 2.0, 1, 800, 1, 800, 1, 1.5, 5, 100, 3, 5.0, 2000, 2)
CHILD_TIMEOUT_S = 900.0
POST_RATE, E2E_RATE = 50.0, 100.0  # issue 8's rates


def _pct(value: float) -> str:
    return f"{100 * value:+.1f}%"


def measure_live(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    load = argparse.Namespace(
        waiters=sizes.waiters, seconds=sizes.live_seconds, post_rate=POST_RATE, e2e_rate=E2E_RATE, e2e_only=False
    )
    m: dict[str, Any] = live.run_fast(live.measure(load, children, redis_url))
    statuses = [m[f"{name}_statuses"] for name in ("post_alone", "post_with_waiters", "e2e")]
    unavailable = sum(s.get("503", 0) for s in statuses)
    failed = sum(s.get("-1", 0) for s in statuses)
    slower = m["post_with_waiters_p99_ms"] / m["post_alone_p99_ms"]
    return [
        Figure(
            f"Redis commands/s with {sizes.waiters:,} idle waiters",
            f"{m['idle_commands_per_s']:,.1f}",
            "< 100 (with 2,000 waiters)",
            m["idle_commands_per_s"] < 100,
        ),
        Figure("API CPU while they wait", f"{m['idle_api_cpu_percent']:.1f}%"),
        Figure(
            f"POST /v1/jobs p50 / p99 at {POST_RATE:g}/s, no waiters",
            f"{m['post_alone_p50_ms']:.2f} / {m['post_alone_p99_ms']:.2f} ms",
        ),
        Figure(
            f"POST /v1/jobs p50 / p99 at {POST_RATE:g}/s, with {sizes.waiters:,} waiters",
            f"{m['post_with_waiters_p50_ms']:.2f} / {m['post_with_waiters_p99_ms']:.2f} ms",
        ),
        Figure("POST p99 with waiters / without", f"{slower:.2f}x", "<= 2x (with 2,000 waiters)", slower <= 2),
        Figure(
            "503 answers (all three loads)",
            f"{unavailable} (and {failed} failed requests)",
            "none",
            unavailable == 0 and failed == 0,
        ),
        Figure(
            f"POST + GET result?wait=10 at {E2E_RATE:g}/s, p50",
            f"{m['e2e_p50_ms']:.2f} ms",
            "<= 2 ms",
            m["e2e_p50_ms"] <= 2,
        ),
        Figure(
            f"POST + GET result?wait=10 at {E2E_RATE:g}/s, p99",
            f"{m['e2e_p99_ms']:.2f} ms",
            "<= 6 ms",
            m["e2e_p99_ms"] <= 6,
        ),
        Figure(
            "of which the result wait, p50 / p99",
            f"{m['e2e_wait_part_p50_ms']:.2f} / {m['e2e_wait_part_p99_ms']:.2f} ms",
        ),
        Figure(
            "answer after the job's end, p50 / p99 (±1 ms)",
            f"{m['e2e_answer_after_end_p50_ms']:.2f} / {m['e2e_answer_after_end_p99_ms']:.2f} ms",
        ),
    ]


def measure_log_cost(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    m = log_cost.medians(*asyncio.run(log_cost.run(redis_url, children, sizes.log_rounds, sizes.log_jobs)))
    return [
        Figure("drain, INFO / WARNING", f"{m['info_rate']:,.0f} / {m['warning_rate']:,.0f} jobs/s"),
        Figure("INFO's rate as a share of WARNING's", f"{m['info_share']:.0%}", ">= 85%", m["info_share"] >= 0.85),
        Figure("worker CPU per job, INFO / WARNING", f"{m['info_cpu_us']:.0f} / {m['warning_cpu_us']:.0f} µs"),
        Figure(
            "the same share by worker CPU (steadier)",
            f"{m['info_share_by_cpu']:.0%}",
            ">= 85%",
            m["info_share_by_cpu"] >= 0.85,
        ),
    ]


def measure_drain(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    rows = asyncio.run(drain.drain_rounds(children, redis_url, sizes.drain_rounds, sizes.drain_jobs, sys.stderr))
    m = drain.medians(rows)
    before = "within 10% of before the events (issue 8), 5% of before workflows (issue 11)"
    return [
        Figure("drain, 1 worker", f"{m['rate']:,.0f} jobs/s", before),
        Figure("Redis commands per job", f"{m['commands_per_job']:.2f}", before),
        Figure("Redis time in scripts per job", f"{m['script_usec_per_job']:.1f} µs"),
        Figure("CPU: Redis / worker", f"{m['redis_cpu_pct']:.0f}% / {m['worker_cpu_pct']:.0f}%"),
    ]


def measure_security(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    # Before: this tree without the layer alone (bench/security_off.py's checks-off: keys, scopes, rate limit,
    # body limits, strict parsing, kwargs checks, Host check, security headers), the rest of the guard kept.
    measured = security_cost.compare(
        "checks-off", sizes.security_rounds, sizes.security_duration_s, redis_url, sys.stderr
    )
    m = security_cost.summary(measured)
    return [
        Figure("POST /v1/jobs, without / with the layer", f"{m['before_rps']:,.0f} / {m['after_rps']:,.0f} req/s"),
        Figure(
            "throughput change (median of per-round ratios)",
            _pct(m["paired_rps_change"]),
            ">= -5%",
            m["paired_rps_change"] >= -0.05,
        ),
        Figure("API CPU per request, without / with", f"{m['before_cpu_us']:.0f} / {m['after_cpu_us']:.0f} µs"),
        Figure(
            "API CPU per request change (what throughput follows when the API is the bottleneck)",
            _pct(m["paired_cpu_change"]),
            "none: the target is throughput",
        ),
    ]


def measure_security_micro(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    argv = ["-m", "bench.security_micro", "--json", "--batches", str(sizes.security_micro_batches)]
    m: dict[str, float] = children.run_json("security-micro", argv, child_env(redis_url), timeout_s=CHILD_TIMEOUT_S)
    return [
        Figure("whole request, without / with the layer", f"{m['bare_us']:.0f} / {m['guarded_us']:.0f} µs"),
        Figure("whole request change", _pct(m["whole_request_change"]), "<= +5%", m["whole_request_change"] <= 0.05),
        Figure("alone: the guard's checks + check_kwargs", f"{m['guard_us']:.1f} + {m['check_kwargs_us']:.1f} µs"),
        Figure("the layer's share of a request", f"{m['layer_share']:.1%}", "<= 5%", m["layer_share"] <= 0.05),
    ]


def measure_embed(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    argv = ["-m", "bench.embed_micro", "--json", "--requests", str(sizes.embed_requests)]
    rows: list[dict[str, Any]] = children.run_json(
        "embed-micro", [*argv, "--rounds", str(sizes.embed_rounds)], child_env(redis_url), timeout_s=CHILD_TIMEOUT_S
    )
    figures = []
    for row in rows:
        measured = f"{row['cpu_us']:.0f} µs API CPU, {row['wall_us']:.0f} µs wall"
        if row["base"] is None:
            figures.append(Figure(row["variant"], measured))
            continue
        cost = f"{_pct(row['cpu_cost'])} CPU ({_pct(row['wall_cost'])} wall) over {row['base']}"
        if "PoolDep" in row["variant"]:  # adds one dependency and nothing else: the noise of the machine
            figures.append(Figure(row["variant"], cost, "none: a noise gauge"))
        else:
            figures.append(Figure(row["variant"], cost, "<= +5% (CPU)", row["cpu_cost"] <= 0.05))
    return figures


def measure_flow(children: Children, redis_url: str, sizes: IssueSizes) -> list[Figure]:
    m = asyncio.run(flow.run(children, redis_url, sizes.flow_seconds, sizes.flow_backlog, sizes.flow_rounds))
    return [
        Figure(
            f"`5/s` over three workers for {sizes.flow_seconds:g} s: error",
            f"{m['rated_error_pct']:+.1f}%",
            "within 10%",
            bool(m["rate_limit_within_10pct"]),
        ),
        Figure(
            "`concurrency=2` over three workers: most at once",
            str(m["paired_max_concurrent"]),
            "never above 2",
            m["paired_max_concurrent"] <= 2,
        ),
        Figure(
            f"a high job behind {sizes.flow_backlog:,} default ones starts after, median / worst",
            f"{m['high_start_ms_median']:.0f} / {m['high_start_ms_max']:.0f} ms",
            "<= 50 ms",
            bool(m["high_within_50ms"]),
        ),
    ]


@dataclass(frozen=True)
class Spec:
    issues: tuple[int, ...]
    title: str
    command: Callable[[IssueSizes], str]  # the same measurement alone, at these sizes
    measure: Callable[[Children, str, IssueSizes], list[Figure]]
    note: str = ""


STAGES = [
    Spec(
        (8,),
        "Idle result waiters and end-to-end latency (`bench/live.py`)",
        lambda s: f"python -m bench.live --waiters {s.waiters} --seconds {s.live_seconds:g}",
        measure_live,
    ),
    Spec(
        (8,),
        "A worker's drain at `LOG_LEVEL=INFO` against `WARNING` (`bench/log_cost.py`)",
        lambda s: f"python -m bench.log_cost --rounds {s.log_rounds} --jobs {s.log_jobs}",
        measure_log_cost,
    ),
    Spec(
        (8, 11),
        "The platform's one-worker drain (`bench/drain.py`)",
        lambda s: f"python -m bench.drain --rounds {s.drain_rounds} --jobs {s.drain_jobs}",
        measure_drain,
        "'Before' is an older revision, which a run of this tree does not measure: run the command on both "
        "checkouts, interleaved, and compare the medians (the hand-written sections below hold such runs).",
    ),
    Spec(
        (9,),
        "End to end: this API with and without the layer, one uvicorn each (`bench/security_cost.py`)",
        lambda s: (
            f"python -m bench.security_cost --before checks-off --rounds {s.security_rounds} "
            f"--duration {s.security_duration_s:g}"
        ),
        measure_security,
    ),
    Spec(
        (9,),
        "In one process: the same app with and without the layer through ASGI (`bench/security_micro.py`)",
        lambda s: f"python -m bench.security_micro --batches {s.security_micro_batches}",
        measure_security_micro,
    ),
    Spec(
        (10,),
        "Per enqueue, in one process through ASGI with real Redis round trips (`bench/embed_micro.py`)",
        lambda s: f"python -m bench.embed_micro --requests {s.embed_requests} --rounds {s.embed_rounds}",
        measure_embed,
    ),
    Spec(
        (11,),
        "Rate and concurrency limits across three workers, and a high-priority job behind a backlog (`bench/flow.py`)",
        lambda s: (
            f"python -m bench.flow --seconds {s.flow_seconds:g} --backlog {s.flow_backlog} --rounds {s.flow_rounds}"
        ),
        measure_flow,
    ),
]


def run_stage(spec: Spec, children: Children, redis_url: str, sizes: IssueSizes) -> Stage:
    """One stage's figures; a stage that fails is a note on it (Ctrl-C still ends the run). Whatever the stage
    started (an API, a worker) is stopped when it ends, so it cannot take jobs or CPU from the next one."""
    stage = Stage(spec.issues, spec.title, spec.command(sizes), notes=[spec.note] if spec.note else [])
    try:
        with Children(children.log_dir) as own:
            stage.figures = spec.measure(own, redis_url, sizes)
    except Exception as exc:
        stage.notes.append(f"not measured: {type(exc).__name__}: {exc}")
    return stage
