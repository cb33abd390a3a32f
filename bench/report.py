"""Medians over rounds, the printed table, `docs/benchmarks.md` and its plot."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import median
from bench.systems import ARQ_TUNED, PLATFORM, System


@dataclass
class RoundResult:
    """One system in one round."""

    system: str
    round: int
    metrics: dict[str, float] = field(default_factory=dict)
    worker_commands: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    label: str
    metric: str
    fmt: str = "{:,.0f}"
    lower_is_better: bool = False


ROWS = [
    Row("Enqueue one at a time via the pool (jobs/s)", "enqueue_per_s"),
    Row("Enqueue in batches of 500 via the pool (jobs/s)", "enqueue_batch_per_s"),
    Row("  Redis round trips per enqueue (client side)", "enqueue_round_trips", "{:.1f}", True),
    Row("  Redis commands per enqueue", "enqueue_commands", "{:.1f}", True),
    Row("POST /v1/jobs, raw asyncio client (req/s)", "http_rps"),
    Row("  p50 (ms)", "http_p50_ms", "{:.1f}", True),
    Row("  p99 (ms)", "http_p99_ms", "{:.1f}", True),
    Row("POST /v1/jobs, httpx.AsyncClient (req/s)", "httpx_rps"),
    Row("Drain, 1 worker process (jobs/s)", "drain_1"),
    Row("  first pickup after the backlog appears (ms)", "first_pickup_ms", "{:.0f}", True),
    Row("  CPU during it: redis-server / worker (% of one core)", "drain_1_cpu", "", True),
    Row("Drain, 2 worker processes (jobs/s)", "drain_2"),
    Row("  CPU: redis-server / workers (% of one core)", "drain_2_cpu", "", True),
    Row("Drain, 4 worker processes (jobs/s)", "drain_4"),
    Row("  CPU: redis-server / workers (% of one core)", "drain_4_cpu", "", True),
    Row("  2 workers / 1 worker", "scale_2", "{:.2f}"),
    Row("  worker Redis commands per job, 2 / 4 workers", "drain_2_4_commands", "", True),
    Row("End-to-end at 100 jobs/s, p50 (ms)", "e2e_p50_ms", "{:.1f}", True),
    Row("  p95 (ms)", "e2e_p95_ms", "{:.1f}", True),
    Row("  p99 (ms)", "e2e_p99_ms", "{:.1f}", True),
    Row("Worker Redis commands per job (drain, 1 worker)", "worker_commands", "{:.1f}", True),
    Row("Worker log output per job (bytes)", "worker_log_bytes", "{:.0f}", True),
    Row("Worker start-up, spawn to ready (s)", "worker_startup_s", "{:.2f}", True),
]


@dataclass
class Summary:
    """Medians per system over the rounds."""

    systems: list[System]
    metrics: dict[str, dict[str, float]]
    commands: dict[str, dict[str, float]]
    rounds: int


def summarize(results: list[RoundResult], systems: list[System]) -> Summary:
    metrics: dict[str, dict[str, float]] = {}
    commands: dict[str, dict[str, float]] = {}
    for system in systems:
        mine = [r for r in results if r.system == system.key]
        names = {name for r in mine for name in r.metrics}
        metrics[system.key] = {name: median([r.metrics.get(name, math.nan) for r in mine]) for name in names}
        command_names = {name for r in mine for name in r.worker_commands}
        medians = {name: median([r.worker_commands.get(name, 0.0) for r in mine]) for name in command_names}
        commands[system.key] = dict(sorted(medians.items(), key=lambda item: -item[1]))
    return Summary(systems, metrics, commands, max((r.round for r in results), default=0))


def _cell(summary: Summary, system: System, row: Row) -> str:
    if row.metric.endswith("_cpu"):  # a pair: redis-server and the worker processes
        values, base = summary.metrics.get(system.key, {}), row.metric.removesuffix("_cpu")
        redis = values.get(base + "_redis_cpu_pct", math.nan)
        workers = values.get(base + "_workers_cpu_pct", math.nan)
        return "—" if math.isnan(redis) else f"{redis:.0f} / {workers:.0f}"
    if row.metric == "drain_2_4_commands":
        values = summary.metrics.get(system.key, {})
        two, four = values.get("drain_2_commands", math.nan), values.get("drain_4_commands", math.nan)
        return "—" if math.isnan(two) else f"{two:.1f} / {four:.1f}"
    value = summary.metrics.get(system.key, {}).get(row.metric, math.nan)
    return "—" if math.isnan(value) else row.fmt.format(value)


def _ratio(summary: Summary, row: Row) -> str:
    ours = summary.metrics.get(PLATFORM.key, {}).get(row.metric, math.nan)
    theirs = summary.metrics.get(ARQ_TUNED.key, {}).get(row.metric, math.nan)
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0 or not row.fmt:
        return "—"
    return f"{ours / theirs:.2f}x" + (" (lower is better)" if row.lower_is_better else "")


def table_rows(summary: Summary) -> list[list[str]]:
    header = ["", *(s.label for s in summary.systems), "platform / arq tuned"]
    rows = [header]
    for row in ROWS:
        cells = [_cell(summary, s, row) for s in summary.systems]
        if all(c == "—" for c in cells):
            continue
        rows.append([row.label, *cells, _ratio(summary, row)])
    return rows


def command_rows(summary: Summary, top: int = 8) -> list[list[str]]:
    rows = [["system", "total", f"top {top} commands per job"]]
    for system in summary.systems:
        calls = summary.commands.get(system.key, {})
        if not calls:
            continue
        listed = ", ".join(f"{name} {n:.2f}" for name, n in list(calls.items())[:top])
        rows.append([system.label, f"{sum(calls.values()):.1f}", listed])
    return rows


def as_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_markdown(rows: list[list[str]], align_right: bool = True) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---"] + [("---:" if align_right else "---")] * (len(rows[0]) - 1)
    return "\n".join([line(rows[0]), "|" + "|".join(rule) + "|", *(line(r) for r in rows[1:])])


def write_plot(summary: Summary, path: Path) -> bool:
    """Throughput bars and end-to-end latency percentiles; False (and no file) without matplotlib."""
    try:  # optional (the `bench` extra), so imported by name: mypy checks this file with or without it
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    throughput = [
        ("enqueue\n(pool)", "enqueue_per_s"),
        ("POST /v1/jobs\n(req/s)*", "http_rps"),
        ("drain\n1 worker", "drain_1"),
        ("drain\n2 workers", "drain_2"),
        ("drain\n4 workers", "drain_4"),
    ]
    latency = [("p50", "e2e_p50_ms"), ("p95", "e2e_p95_ms"), ("p99", "e2e_p99_ms")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [5, 3]})
    width = 0.8 / len(summary.systems)
    for i, system in enumerate(summary.systems):
        values = summary.metrics.get(system.key, {})
        xs = [n + (i - (len(summary.systems) - 1) / 2) * width for n in range(len(throughput))]
        ys = [values.get(metric, math.nan) for _, metric in throughput]
        bars = left.bar(xs, [0 if math.isnan(y) else y for y in ys], width, label=system.label)
        left.bar_label(
            bars, labels=["" if math.isnan(y) else f"{y:,.0f}" for y in ys], fontsize=7, rotation=90, padding=2
        )
        xs = [n + (i - (len(summary.systems) - 1) / 2) * width for n in range(len(latency))]
        ys = [values.get(metric, math.nan) for _, metric in latency]
        bars = right.bar(xs, [0 if math.isnan(y) else y for y in ys], width, label=system.label)
        right.bar_label(bars, labels=["" if math.isnan(y) else f"{y:.1f}" for y in ys], fontsize=7, padding=2)
    left.set_xticks(range(len(throughput)), [name for name, _ in throughput])
    left.set_ylabel("per second (higher is better)")
    left.set_title("Throughput, no-op jobs")
    left.margins(y=0.15)
    left.legend(fontsize=8)
    right.set_xticks(range(len(latency)), [name for name, _ in latency])
    right.set_yscale("log")
    tallest = max(
        (summary.metrics.get(s.key, {}).get(m, math.nan) for s in summary.systems for _, m in latency),
        key=lambda v: -math.inf if math.isnan(v) else v,
        default=math.nan,
    )
    if not math.isnan(tallest) and tallest > 0:
        right.set_ylim(top=tallest * 10)  # room for the legend above the bars
    right.set_ylabel("ms, log scale (lower is better)")
    right.set_title("Enqueue to result visible, 100 jobs/s")
    right.legend(fontsize=8, loc="upper right")
    figure.text(0.01, 0.01, "* arq tuned: a minimal FastAPI endpoint around enqueue_job (bench/raw_app.py)", fontsize=7)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
