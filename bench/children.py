"""Every process the benchmark starts, in its own process tree, stopped on exit whatever happened.

Children stay in the benchmark's process group, so a Ctrl-C reaches them too; `Children.__exit__`
then makes sure each one is gone (SIGTERM, then SIGKILL after a deadline), newest first, Redis last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
STOP_TIMEOUT_S = 10.0


class ChildFailed(RuntimeError):
    """A child run for its output failed or took too long."""


def child_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker or API process: none of the developer's platform settings leak in."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT), LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Children:
    """A registry of child processes; a context manager that stops them all on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __enter__(self) -> Children:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def adopt(self, name: str, process: subprocess.Popen[bytes]) -> None:
        """Take a process started elsewhere (the Redis server) under the same guarantee."""
        self._running.append((name, process))

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str], *, capture: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start `python argv...` from the repository root; output goes to `bench/out/logs/<name>.log`."""
        if not capture:
            return self.spawn_raw(name, [sys.executable, *argv], env)
        process = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._running.append((name, process))
        return process

    def spawn_raw(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start any command from the repository root, output to `bench/out/logs/<name>.log`."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._running.append((name, process))
        return process

    def run_json(self, name: str, argv: list[str], env: dict[str, str], *, timeout_s: float) -> Any:
        """Run `python argv...` to its end and return the JSON it printed on standard output; a child that fails
        or outlives `timeout_s` is stopped and raises ChildFailed with the end of its standard error."""
        process = self.spawn(name, argv, env, capture=True)
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ChildFailed(f"{name} did not finish within {timeout_s:.0f} s") from exc
        finally:
            self.stop(process)
        if process.returncode != 0:
            raise ChildFailed(f"{name} failed: {err.decode(errors='replace')[-300:]}")
        return json.loads(out)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 1) -> str:
        """The last lines a child wrote to its log, to say why it stopped."""
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""
        return " / ".join(text.strip().splitlines()[-lines:])

    def stop(self, *processes: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM all of them at once, wait up to `timeout_s` in total, then SIGKILL what is left."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._running = [(n, p) for n, p in self._running if p not in processes]

    def stop_all(self) -> None:
        """Newest first, so the workers and the API are gone before Redis stops; a second Ctrl-C waits."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._running:
                _, process = self._running[-1]
                self.stop(process)
        finally:
            signal.signal(signal.SIGINT, previous)
