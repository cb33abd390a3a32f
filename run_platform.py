"""`make run`: the whole platform in one command: Redis (embedded when none is configured), one
worker and the API. Ctrl-C stops the API, lets the worker drain, then stops Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import structlog

from core.embedded_redis import RedisProcess, answers_ping, start_redis
from core.logging import configure_logging
from core.redis import redacted
from settings import Settings, load_settings

log = structlog.get_logger("run")


def ensure_redis(settings: Settings) -> tuple[str, RedisProcess | None]:
    """The Redis URL to use, starting an embedded server when REDIS_URL is unset and nothing answers."""
    url = urlparse(settings.redis_url)
    host, port = url.hostname or "localhost", url.port or 6379
    if answers_ping(host, port) or url.scheme == "unix":
        log.info("run.redis_found", redis=redacted(settings.redis_url))
        return settings.redis_url, None
    if "redis_url" in settings.model_fields_set:
        raise SystemExit(f"REDIS_URL is set to {redacted(settings.redis_url)}, but nothing answers there")
    data_dir = Path(settings.data_dir) / "redis"
    redis = start_redis(port, data_dir, appendonly=True, log_file=data_dir / "redis.log")
    log.info("run.redis_embedded", url=redis.url, data_dir=str(data_dir), appendonly=True)
    return redis.url, redis


def spawn(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.info("run.starting", process=name, command=" ".join(command))
    # Own session: Ctrl-C reaches only this launcher, which then stops the children in order.
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop(name: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("run.killing", process=name)
            process.kill()
            process.wait()
    log.info("run.stopped", process=name, exit_code=process.returncode)


def main(app: str = "service.main:app") -> int:
    """Run Redis (if needed), one worker and `app` (an ASGI `module:attribute`) until Ctrl-C."""
    settings = load_settings()
    configure_logging(settings)
    redis_url, redis = ensure_redis(settings)
    env = {**os.environ, "REDIS_URL": redis_url}
    worker = spawn("worker", [sys.executable, "-m", "arq", "worker.WorkerSettings"], env)
    api = spawn(
        "api",
        [sys.executable, "-m", "uvicorn", app, "--host", settings.api_host,
         "--port", str(settings.api_port)],
        env,
    )  # fmt: skip
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    log.info("run.ready", api=f"http://{settings.api_host}:{settings.api_port}/docs")
    exit_code = 0
    while not stopping:
        if api.poll() is not None or worker.poll() is not None:
            log.error("run.child_exited", api=api.returncode, worker=worker.returncode)
            exit_code = 1
            break
        time.sleep(0.2)
    stop("api", api, 10)
    stop("worker", worker, settings.shutdown_grace_seconds + 10)
    if redis is not None:
        redis.stop()
        log.info("run.stopped", process="redis")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
