"""The real worker process (`arq worker.WorkerSettings`) and uvicorn, as the tests start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def process_env(redis_url: str, **extra: str) -> dict[str, str]:
    # The developer's own settings must not leak into the process under test.
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        REDIS_URL=redis_url,
        JOB_MODULES="jobs,tests.support.sample_jobs",
        LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
        HEALTH_CHECK_INTERVAL_SECONDS="1",
    )
    env.update(extra)
    return env


def start_worker(redis_url: str, log_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    """Start `arq worker.WorkerSettings` exactly as a user would."""
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "arq", "worker.WorkerSettings"],
        cwd=ROOT,
        env=process_env(redis_url, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
