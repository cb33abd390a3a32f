"""ASGI entry point: `uvicorn service.main:app`.

`python -m service.main` (what `make run`, the compose file and the image run; `python -m service.server` is the
same) serves the same app on API_HOST:API_PORT with the hardened server config (service/server.py: no `server`
header, a header-read timeout), logs `api.listening` only once the socket is bound, and exits 0 when asked to stop.
"""

from __future__ import annotations

import signal
import socket
import sys

import structlog
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.server import config as hardened_config
from settings import Settings, check_job_modules, load_settings

log = structlog.get_logger("api")


def checked_app(settings: Settings) -> FastAPI:
    """The app; a bad setting (JOB_MODULES included) stops the process with `invalid setting NAME: reason`."""
    check_job_modules(settings)
    return create_app(settings)


class Server(uvicorn.Server):
    """uvicorn's server, announcing itself once it really listens (a failed bind exits before this)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("api.listening", url=f"http://{self.config.host}:{self.config.port}")


def serve(app: FastAPI, settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; 0 when the server had started."""
    # After a graceful shutdown uvicorn raises the signal it caught again, under the handlers it found:
    # with Python's defaults that is a death by SIGTERM (-15) or a KeyboardInterrupt traceback. A stop we
    # were asked for is a normal exit, so these handlers take that second delivery and do nothing.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: None)
    server = Server(hardened_config(settings, app=app))
    server.run()
    return 0 if server.started else 1


USAGE = """usage: python -m service.main (or python -m service.server)

Serves the API with the hardened server config. It takes no arguments: every setting is an environment
variable (API_HOST, API_PORT, REDIS_URL, API_KEYS, ...; the README lists them all)."""


def main(argv: list[str] | None = None) -> int:
    """Serve; `--help` (or any argument, which would otherwise be silently ignored) prints the usage instead."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(USAGE, file=sys.stdout if args[0] in ("-h", "--help") else sys.stderr)
        return 0 if args[0] in ("-h", "--help") else 2
    settings = load_settings()
    return serve(checked_app(settings), settings)


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """`service.main:app`, built on first use (so `python -m service.server` does not build it twice)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = checked_app(load_settings())
    return _app


if __name__ == "__main__":
    sys.exit(main())
