"""Clean logs: the platform adds its handler without removing the host's, once however often it is
configured; uvicorn's lines lose their terminal colour codes; `api.listening` means the port is bound;
`arq --check` prints one line in the platform's format, also when Redis is down."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis

from core.embedded_redis import RedisProcess, free_port
from core.logging import PlatformHandler, configure_logging
from settings import Settings
from tests.support.processes import ROOT, process_env, start_worker, stop_process
from tests.support.waiting import wait_for


class Collecting(logging.Handler):
    """A host process's own handler (Sentry's, a file, a test's), here keeping what it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_handlers() -> Iterator[list[logging.Handler]]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield root.handlers
    root.handlers[:] = saved
    root.setLevel(level)


def test_configure_logging_keeps_the_host_handlers_and_adds_its_own_once(
    root_handlers: list[logging.Handler],
) -> None:
    host = Collecting()
    logging.getLogger().addHandler(host)
    settings = Settings(log_format="json", log_level="INFO")

    configure_logging(settings)
    configure_logging(settings)
    logging.getLogger("some.library").warning("hello")

    assert host in root_handlers
    assert sum(isinstance(h, PlatformHandler) for h in root_handlers) == 1
    assert [r.getMessage() for r in host.records] == ["hello"]


def run_api(command: list[str], port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=process_env("redis://127.0.0.1:1/0", API_PORT=str(port), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_uvicorn_lines_carry_no_colour_codes(tmp_path: Path, log_format: str) -> None:
    port, log = free_port(), tmp_path / "api.log"
    command = [sys.executable, "-m", "uvicorn", "service.main:app", "--port", str(port)]
    api = run_api(command, port, log, LOG_FORMAT=log_format)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def health() -> int:
                try:
                    return (await client.get("/health")).status_code
                except httpx.TransportError:
                    return 0

            await wait_for(health, lambda status: status == 200, timeout=20, interval=0.05)
    finally:
        assert stop_process(api) in (0, -15)  # uvicorn's own CLI re-raises the SIGTERM it handled
    text = log.read_text()
    assert "Started server process" in text
    assert "color_message" not in text
    assert "\x1b[36m%d" not in text


def test_api_listening_is_not_logged_when_the_bind_fails(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = run_api([sys.executable, "-m", "service.main"], port, log)
        returncode = api.wait(30)
    text = log.read_text()

    assert returncode == 3  # uvicorn's start-up failure
    assert "api.listening" not in text
    assert "api.started" not in text
    assert "address already in use" in text
    assert "Traceback" not in text


def arq_check(redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arq", "--check", "worker.WorkerSettings"],
        cwd=ROOT,
        env=process_env(redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_json_line(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    return dict(json.loads(lines[0]))


def test_arq_check_without_a_worker_is_one_line_and_exit_1(redis_server: RedisProcess) -> None:
    done = arq_check(redis_server.url.replace("/0", "/9"))  # a db no test worker uses

    assert done.returncode == 1
    assert one_json_line(done)["event"].startswith("Health check failed")


async def test_arq_check_with_a_live_worker_is_one_line_and_exit_0(
    redis_server: RedisProcess, redis: ArqRedis, tmp_path: Path
) -> None:
    """(`redis` flushes the test Redis first.)"""
    worker = start_worker(redis_server.url, tmp_path / "worker.log")
    try:

        async def check() -> subprocess.CompletedProcess[str]:
            return arq_check(redis_server.url)

        done = await wait_for(check, lambda d: d.returncode == 0, timeout=20, interval=0.2)
    finally:
        stop_process(worker)
    assert one_json_line(done)["event"].startswith("Health check successful")


def test_arq_check_with_redis_down_is_one_line_and_exit_1() -> None:
    done = arq_check(f"redis://127.0.0.1:{free_port()}/0")

    assert done.returncode == 1
    line = one_json_line(done)
    assert line["event"] == "redis.unreachable"
    assert "Connection refused" in line["error"]
