"""An ASGI app served by a real uvicorn process on a free port, for tests where the process itself matters
(killed after a response, stopped mid-request) or a client talks real HTTP (the CLI)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from core.embedded_redis import free_port
from tests.support.processes import ROOT, process_env, stop_process


@contextmanager
def served(app: str, redis_url: str, log_path: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve `module:attribute` with uvicorn; yields its base URL and process once `/health` answers."""
    port = free_port()
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=process_env(redis_url, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"uvicorn did not start; see {log_path}")
            time.sleep(0.05)
        yield url, process
    finally:
        stop_process(process)
        log.close()
