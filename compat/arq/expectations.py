"""Which of arq's own tests the platform's worker is not held to, and why: the one place to edit.

A test id is `tests/<file>.py::<test>` as pytest prints it; without `[params]` it covers every parameter set.
docs/arq-compatibility.md lists the same entries for readers; keep the two in step.
"""

from __future__ import annotations

# The platform logs structlog events (`job.started`, `job.failed`, `worker.redis_unavailable`, ...; see the
# README's Logging section) instead of arq's per-job and shutdown sentences, so a test that asserts those
# sentences can never pass. Where such a test checks something else after the sentence, the reason says so.
_PER_JOB_LINES = "asserts arq's per-job log lines ('→ id:function()', '← id:function ● result')"
# The platform logs a failure as `job.failed` with kind, error, message and traceback (tested in the project's
# tests/test_worker_logging.py); the skipped tests marked with this look only for arq's wording of that line.
_NO_FAILURE_LINE = " (the platform logs it as job.failed with its traceback: tests/test_worker_logging.py)"

# Skipped for good: tests of arq's log wording, or of a behaviour the platform changes on purpose.
SKIPS: dict[str, str] = {
    # log wording
    "tests/test_cli.py::test_run": (
        "log wording: asserts arq's 'Starting worker for 1 functions: foobar' line (the platform logs "
        "worker.started with its functions); the CLI run itself exits 0"
    ),
    "tests/test_cron.py::test_job_successful": (
        f"log wording: {_PER_JOB_LINES} for a cron job; after it, also checks the cron job's in-progress key "
        "outlives the run"
    ),
    "tests/test_cron.py::test_job_successful_on_specific_queue": f"log wording: {_PER_JOB_LINES} for a cron job",
    "tests/test_worker.py::test_job_successful": f"log wording: {_PER_JOB_LINES}",
    "tests/test_worker.py::test_job_successful_no_result_logging": (
        f"log wording: {_PER_JOB_LINES} with the result left out"
    ),
    "tests/test_worker.py::test_job_retry": "log wording: arq's '↻ id:function retrying job in Xs' and 'try=2' lines",
    "tests/test_worker.py::test_job_retry_dont_retry": (
        f"log wording: arq's '! id:function failed, Retry: ...' line{_NO_FAILURE_LINE}"
    ),
    "tests/test_worker.py::test_job_retry_max_jobs": "log wording: arq's '↻ id:function retrying job in Xs' line",
    "tests/test_worker.py::test_job_job_not_found": (
        "log wording: arq's \"job id, function 'missing' not found\" (the platform logs job.unknown_function)"
    ),
    "tests/test_worker.py::test_retry_lots": "log wording: arq's '! id:function max retries 5 exceeded' line",
    "tests/test_worker.py::test_retry_job_error": "log wording: arq's '↻ id:function cancelled, will be run again'",
    "tests/test_worker.py::test_job_expired": "log wording: arq's 'job id expired' line",
    "tests/test_worker.py::test_job_old": f"log wording: {_PER_JOB_LINES} with 'delayed=2.XXs'",
    "tests/test_worker.py::test_str_function": (
        f"log wording: arq's '! id:asyncio.sleep failed, TypeError' line{_NO_FAILURE_LINE}"
    ),
    "tests/test_worker.py::test_exc_extra": (
        "log wording: arq's '! id:function failed, CustomError: ...' line and the `extra` arq puts on that record"
        f"{_NO_FAILURE_LINE}"
    ),
    "tests/test_worker.py::test_many_jobs_expire": "log wording: counts arq's 'job id expired' lines (100 of them)",
    "tests/test_worker.py::test_max_bursts_sub_call": f"log wording: {_PER_JOB_LINES} ('bar(10)', 'foo')",
    "tests/test_worker.py::test_max_bursts_multiple": (
        f"log wording: {_PER_JOB_LINES}; tells which of foo(1)/foo(2) ran only from those lines (the job count "
        "before them is checked)"
    ),
    "tests/test_worker.py::test_non_burst": f"log wording: {_PER_JOB_LINES} ('← testing:foo ● 2')",
    "tests/test_worker.py::test_abort_job": (
        "log wording: arq's '⊘ id:function aborted' line; after it, also checks aborting_tasks, tasks and "
        "job_tasks are empty"
    ),
    "tests/test_worker.py::test_abort_job_before": (
        "log wording: arq's '⊘ id:function aborted before start' line; after it, also runs main() again and "
        "checks aborting_tasks, job_tasks and tasks are empty"
    ),
    "tests/test_worker.py::test_abort_deferred_job_before": (
        "log wording: arq's '⊘ id:function aborted before start' line; after it, also runs main() again and "
        "checks aborting_tasks, job_tasks and tasks are empty"
    ),
    "tests/test_worker.py::test_not_abort_job": (
        f"log wording: {_PER_JOB_LINES}; after it, also runs main() again and checks aborting_tasks, tasks "
        "and job_tasks are empty"
    ),
    "tests/test_worker.py::test_job_cancel_on_max_jobs": (
        "log wording: arq's '⊘ id:function aborted' line; after it, also checks aborting_tasks, tasks and "
        "job_tasks are empty"
    ),
    "tests/test_worker.py::test_job_timeout": (
        f"log wording: arq's '! id:function failed, TimeoutError:' line{_NO_FAILURE_LINE}"
    ),
    "tests/test_worker.py::test_worker_signal_completes_job_before_shutting_down": (
        "log wording: arq's 'shutdown on SIGINT, wait complete ◆ ...' and 'id:function cancelled, will be run "
        "again' lines"
    ),
    # intended differences (and log wording)
    "tests/test_worker.py::test_handle_sig": (
        "intended difference: on a signal the platform cancels the jobs' own coroutines (job_tasks), not arq's "
        "run tasks (tasks), so each run still records its outcome; the test asserts tasks[1].cancel() was "
        "called, and arq's 'shutdown on SIGINT ◆ ...' log line"
    ),
    "tests/test_worker.py::test_handle_no_sig": (
        "intended difference: close() without signal handling cancels the jobs' own coroutines, not arq's run "
        "tasks (tasks[1].cancel() is asserted), and the test asserts arq's 'shutdown on SIGUSR1 ◆ ...' log line"
    ),
    "tests/test_worker.py::test_worker_retry": (
        "intended difference: a Redis ConnectionError/TimeoutError in the poll loop is ridden out with backoff "
        "(worker.redis_unavailable), not raised out of _poll_iteration() as the test expects"
    ),
    "tests/test_worker.py::test_worker_crash": (
        "intended difference: a Redis ConnectionError/TimeoutError in the poll loop is ridden out with backoff "
        "(worker.redis_unavailable), not raised out of _poll_iteration() as the test expects"
    ),
}

REBUILD_REASON = "real difference, to be fixed in the worker"

# Real differences of the worker (xfail, strict=False): each value is the first thing that goes wrong. The
# rebuild (issue 7) emptied it; an entry added here must be fixed, not left (an XPASS names one to remove).
EXPECTED_FAILURES_UNTIL_REBUILD: dict[str, str] = {}
