"""`make run` as the tests start it: `run_platform.py` as the leader of its own process group (as a shell
runs a foreground job, so a signal to the group is a Ctrl-C), on free ports, with REDIS_URL unset so it
embeds its own Redis under a temporary DATA_DIR; everything it and its children print goes to one file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.embedded_redis import free_port
from tests.support.processes import ROOT, process_env
from tests.support.waiting import wait_for


@dataclass
class Launcher:
    process: subprocess.Popen[bytes]
    log_path: Path
    api_url: str
    redis_port: int
    data_dir: Path

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line printed so far, by the launcher and its children alike."""
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:  # a line still being written
                    continue
        return found

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: SIGINT to every process of the foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def stop(self, timeout: float = 60) -> int:
        """Whatever the test did, leave no process behind: SIGKILL the group if it outlives the timeout."""
        if self.process.poll() is None:
            self.interrupt()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def launcher_env(data_dir: Path, redis_port: int, api_port: int, **extra: str) -> dict[str, str]:
    env = process_env("unused")
    del env["REDIS_URL"]  # unset: run_platform embeds its Redis on EMBEDDED_REDIS_PORT
    env.update(EMBEDDED_REDIS_PORT=str(redis_port), API_PORT=str(api_port), DATA_DIR=str(data_dir))
    env.update(extra)
    return env


def start_launcher(tmp_path: Path, **extra: str) -> Launcher:
    redis_port = int(extra.pop("EMBEDDED_REDIS_PORT", 0)) or free_port()
    api_port = free_port()
    data_dir, log_path = tmp_path / "data", tmp_path / "run.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "run_platform.py"],
            cwd=ROOT,
            env=launcher_env(data_dir, redis_port, api_port, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Launcher(process, log_path, f"http://127.0.0.1:{api_port}", redis_port, data_dir)


async def wait_until_serving(launcher: Launcher, client: httpx.AsyncClient, timeout: float = 30) -> None:
    """Until the API answers and a worker's heartbeat shows in `GET /v1/workers`."""

    async def workers() -> int:
        if launcher.process.poll() is not None:
            raise AssertionError(f"run_platform exited with {launcher.process.returncode}:\n{launcher.text()[-3000:]}")
        try:
            return len((await client.get("/v1/workers")).json())
        except httpx.TransportError:
            return 0

    await wait_for(workers, lambda count: count >= 1, timeout=timeout, interval=0.1)
