"""`make run`: the whole platform in one command: Redis (embedded when none is configured), one
worker and the API. Ctrl-C stops the API, lets the worker drain, then stops Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import structlog
from redis.exceptions import RedisError

from core.embedded_redis import RedisProcess, answers_ping, start_redis
from core.logging import configure_logging
from core.redis import log_redis_in_use, open_api_pool, redacted
from settings import Settings, check_job_modules, load_settings

log = structlog.get_logger("run")


def ensure_redis(settings: Settings) -> tuple[Settings, RedisProcess | None]:
    """The settings with the Redis to use: REDIS_URL when set (it must answer), else the Redis on 127.0.0.1
    at EMBEDDED_REDIS_PORT, started there (append-only, under DATA_DIR) when nothing answers."""
    if "redis_url" in settings.model_fields_set:
        url = urlparse(settings.redis_url)
        if url.scheme != "unix" and not answers_ping(url.hostname or "localhost", url.port or 6379):
            raise SystemExit(f"REDIS_URL is set to {redacted(settings.redis_url)}, but nothing answers there")
        return settings, None
    port = settings.embedded_redis_port
    if answers_ping("127.0.0.1", port):
        found = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
        log.warning(
            "run.redis_shared",
            redis=found.redis_url,
            queue=found.queue_name,
            why="REDIS_URL is unset and a Redis already answers on EMBEDDED_REDIS_PORT: its db 0 and this queue "
            "are shared with anything else using them; set REDIS_URL and QUEUE_NAME, or another EMBEDDED_REDIS_PORT",
        )
        return found, None
    data_dir = Path(settings.data_dir) / "redis"
    redis = start_redis(port, data_dir, appendonly=True, log_file=data_dir / "redis.log")
    log.info("run.redis_embedded", data_dir=str(data_dir), pid=redis.process.pid)
    return settings.model_copy(update={"redis_url": redis.url}), redis


async def announce_redis(settings: Settings, embedded: bool) -> None:
    """One line saying which Redis the platform uses and whether it persists (a warning when it does not)."""
    pool = open_api_pool(settings)
    try:
        await log_redis_in_use(pool, settings, log, "run.redis", embedded=embedded)
    except (RedisError, OSError) as exc:  # it answered PING; the worker and the API will say more
        log.warning("run.redis_unreadable", redis=redacted(settings.redis_url), error=str(exc))
    finally:
        await pool.aclose()


def spawn(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.info("run.starting", process=name, command=" ".join(command))
    # Own session: Ctrl-C reaches only this launcher, which then stops the children in order.
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop(name: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then wait; every child exits 0 from a stop it was asked for, so anything else is a warning."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("run.killing", process=name, after_s=timeout_s)
            process.kill()
            process.wait()
    log_stopped(name, process.returncode)


def log_stopped(name: str, exit_code: int) -> None:
    log.log(logging.INFO if exit_code == 0 else logging.WARNING, "run.stopped", process=name, exit_code=exit_code)


class StopRequest:
    """Set by SIGINT (Ctrl-C) or SIGTERM; installed first, so a Ctrl-C during start-up still stops in order."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, _signum: int, _frame: object) -> None:
        self.requested = True


def run(settings: Settings, stop_request: StopRequest, app: str | None = None) -> int:
    """Start Redis (if needed), the worker and the API; stop them in that order's reverse when asked."""
    settings, redis = ensure_redis(settings)
    children: list[tuple[str, subprocess.Popen[bytes], float]] = []
    exit_code = 0
    try:
        asyncio.run(announce_redis(settings, embedded=redis is not None))
        if stop_request.requested:  # Ctrl-C while Redis was starting
            return 0
        env = {**os.environ, "REDIS_URL": settings.redis_url}
        worker = spawn("worker", [sys.executable, "-m", "arq", "worker.WorkerSettings"], env)
        children.append(("worker", worker, settings.shutdown_grace_seconds + 10))
        serve = [sys.executable, "-m", "service.main"]  # serves on API_HOST:API_PORT
        if app is not None:  # another app (the example shop): plain uvicorn
            serve = [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
            ]
        api = spawn("api", serve, env)
        children.append(("api", api, 10))
        while not stop_request.requested:
            if api.poll() is not None or worker.poll() is not None:
                log.error("run.child_exited", api=api.returncode, worker=worker.returncode)
                exit_code = 1
                break
            time.sleep(0.1)
    finally:
        for name, process, timeout_s in reversed(children):  # the API, then the worker drains
            stop(name, process, timeout_s)
        if redis is not None:  # last: the worker needed it to finish its jobs
            log_stopped("redis", redis.stop())
    return exit_code


def main(app: str | None = None) -> int:
    """Run Redis (if needed), one worker and the API (or `app`, an ASGI `module:attribute`) until Ctrl-C."""
    stop_request = StopRequest()
    settings = load_settings()
    check_job_modules(settings)
    configure_logging(settings)
    return run(settings, stop_request, app)


if __name__ == "__main__":
    sys.exit(main())
