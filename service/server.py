"""Serve the API with uvicorn, hardened: `python -m service.server` (what the compose file runs).

uvicorn bounds the keep-alive idle time but not how long a client may take to send its request headers,
so a few hundred slow connections can sit on the server forever; `HeaderTimeoutProtocol` closes a
connection whose headers are not complete within HEADER_READ_TIMEOUT_SECONDS. The body's own time limit
is the app's (service/body.py). No `server` header is sent.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from settings import Settings, load_settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline from a request's first byte to its last header."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never completes a request is closed too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def config(settings: Settings | None = None, **overrides: Any) -> uvicorn.Config:
    """uvicorn's config for the platform API, from settings; overrides for tests and benchmarks."""
    settings = settings or load_settings()
    HeaderTimeoutProtocol.header_timeout_s = settings.header_read_timeout_seconds
    options: dict[str, Any] = {
        "app": "service.main:app",
        "host": settings.api_host,
        "port": settings.api_port,
        "http": HeaderTimeoutProtocol,
        "server_header": False,
        "date_header": True,
        "timeout_keep_alive": 5,
        "log_config": None,  # structlog renders uvicorn's lines (core.logging)
    }
    options.update(overrides)
    return uvicorn.Config(**options)


def main() -> int:
    """The same as `python -m service.main`: serve with this config, exit 0 on a requested stop."""
    from service import main as entry  # imported here: service.main builds on this module's config

    return entry.main()


if __name__ == "__main__":
    sys.exit(main())
