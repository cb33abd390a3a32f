"""What PlatformWorker still takes from arq's Worker, in one place. tests/worker/test_arq_surface.py fails
when an arq release moves any of it, so an upgrade of arq is a one-file review, not a hunt."""

from __future__ import annotations

# Methods of arq's Worker that PlatformWorker calls or leaves to arq, unchanged.
INHERITED_METHODS = (
    "__init__",  # arguments, defaults, signal handlers (bound to our handle_sig*), ctx, counters
    "run",  # the sync entry point arq's CLI calls: main() in a task, then close()
    "async_run",
    "run_check",
    "heart_beat",  # record_health() and run_cron() every loop turn
    "record_health",  # arq's health-check key, read by `arq --check`
)

# Attributes arq's __init__ sets that PlatformWorker reads or writes.
ATTRIBUTES = (
    "functions", "queue_name", "cron_jobs", "burst", "on_startup", "on_shutdown", "on_job_start", "on_job_end",
    "after_job_end", "max_jobs", "job_counter", "job_timeout_s", "keep_result_s", "keep_result_forever",
    "poll_delay_s", "queue_read_limit", "max_tries", "health_check_key", "_pool", "redis_settings", "tasks",
    "job_tasks", "main_task", "loop", "ctx", "in_progress_timeout_s", "jobs_complete", "jobs_retried",
    "jobs_failed", "_handle_signals", "_job_completion_wait", "on_stop", "retry_jobs", "allow_abort_jobs",
    "allow_pick_jobs", "aborting_tasks", "max_burst_jobs", "job_serializer", "job_deserializer",
    "expires_extra_ms", "timezone",
)  # fmt: skip

# Methods arq's __init__ binds as signal handlers by name (so overriding them here is what arq calls).
SIGNAL_HANDLERS = ("handle_sig", "handle_sig_wait_for_completion")

# arq's methods PlatformWorker replaces entirely (it owns these loops); listed so a new arq caller of one of
# them is noticed.
REPLACED_METHODS = ("main", "_poll_iteration", "run_cron", "close", "handle_sig", "handle_sig_wait_for_completion")
