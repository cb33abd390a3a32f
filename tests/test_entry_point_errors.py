"""A bad setting stops every entry point with one line, `invalid setting NAME: reason`, and no traceback:
`make run` (run_platform.py), the API (`uvicorn service.main:app`, `python -m service.main`) and the worker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.embedded_redis import answers_ping, free_port
from tests.support.processes import ROOT

TYPO = "jobs,jbos"
TYPO_LINE = "invalid setting JOB_MODULES: cannot import 'jbos' (No module named 'jbos')"
ENTRY_POINTS = {
    "make run": [sys.executable, "run_platform.py"],
    "uvicorn": [sys.executable, "-m", "uvicorn", "service.main:app", "--port", "0"],
    "python -m service.main": [sys.executable, "-m", "service.main"],
}


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # Only what the test sets: no developer variable may leak in, and no Redis of the machine is in reach.
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", "REDIS_URL": nowhere}
    return subprocess.run(command, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_a_typo_in_job_modules_is_one_line_naming_the_setting(entry_point: str) -> None:
    port = free_port()
    done = run(ENTRY_POINTS[entry_point], JOB_MODULES=TYPO, EMBEDDED_REDIS_PORT=str(port), API_PORT=str(port))

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [TYPO_LINE]
    assert not answers_ping("127.0.0.1", port)  # make run started nothing


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_an_invalid_value_is_one_line_naming_the_setting(entry_point: str) -> None:
    done = run(ENTRY_POINTS[entry_point], MAX_JOBS="zero")

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "invalid setting MAX_JOBS: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_typo_in_job_modules_stops_the_worker_with_one_line() -> None:
    done = run([sys.executable, "-m", "arq", "worker.WorkerSettings"], JOB_MODULES=TYPO)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [TYPO_LINE]


BAD_CRON_LINE = (
    "invalid cron schedule 'nightly_eu' of sync_region: kwargs do not fit its signature "
    "(region: Field required; regoin: Extra inputs are not permitted)"
)


@pytest.mark.parametrize(
    "command", [ENTRY_POINTS["python -m service.main"], [sys.executable, "-m", "arq", "worker.WorkerSettings"]]
)
def test_a_bad_cron_schedule_stops_the_api_and_the_worker_with_one_line(command: list[str]) -> None:
    done = run(command, JOB_MODULES="jobs,tests.support.bad_cron_jobs")

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [BAD_CRON_LINE]


def test_the_api_entry_points_answer_help_and_refuse_arguments_instead_of_serving() -> None:
    """`--help` was ignored and the server started (against whatever Redis REDIS_URL named); every setting is
    an environment variable, so an argument is a mistake, named instead of silently dropped."""
    for module in ("service.main", "service.server"):
        helped = run([sys.executable, "-m", module, "--help"])
        assert helped.returncode == 0 and "every setting is an environment" in helped.stdout, helped
        refused = run([sys.executable, "-m", module, "--port", "9000"])
        assert refused.returncode == 2 and "usage:" in refused.stderr, refused
