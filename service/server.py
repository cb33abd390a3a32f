"""Serve the API with uvicorn, hardened: `python -m service.server` (what `make run` and the compose file run).

uvicorn's httptools protocol bounds the keep-alive idle time, but not what a client sends before its request
reaches the app. `HardenedProtocol` adds, per request:
- a deadline from its first byte to its last header (HEADER_READ_TIMEOUT_SECONDS): a few hundred slow
  connections cannot sit on the server forever;
- a size limit on the request line and headers together (MAX_HEADER_BYTES, 431): an 8 MB header, 50,000
  headers, or a header that never ends no longer grows the process until the deadline;
- chunked trailers dropped: httptools hands them over as more headers, appended to the very list the app
  reads, so a key, a content type or a cookie sent after the body could change what the request was;
- its own refusals (400 for a request it cannot parse, 431) in the platform's error shape, with the
  security headers every other answer carries.
The body's own limits are the app's (service/body.py). No `server` header is sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import problem
from service.transport import SECURITY_HEADERS
from settings import Settings, load_settings


class HeadTooLarge(Exception):
    """The request line and headers went over MAX_HEADER_BYTES (raised inside the parser's callbacks)."""


class HardenedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head, and no trailers."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 << 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # between a message's first byte and its last header
        # Two lower bounds of a head's size, so neither can refuse a head under the limit: what the parser
        # announced (the request line and each header it completed), and the chunks that were head from end
        # to end (they also hold what the parser keeps back until a header ends).
        self._announced = 0
        self._whole_chunks = 0
        self._messages_begun = 0
        self._head_too_large = False

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

    def data_received(self, data: bytes) -> None:
        began_in_head, begun = self._in_head and self._messages_begun > 0, self._messages_begun
        super().data_received(data)
        if began_in_head and self._in_head and begun == self._messages_begun and not self.transport.is_closing():
            self._whole_chunks += len(data)
            if self._whole_chunks > self.max_header_bytes:
                self._head_too_large = True
                self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages_begun += 1
        self._in_head, self._announced, self._whole_chunks = True, 0, 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:  # a chunked trailer: never part of the request the app sees
            return
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._announced += size
        if self._announced > self.max_header_bytes:
            self._head_too_large = True
            raise HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what it cannot parse (and this protocol's 431), in the platform's error shape."""
        if self.transport.is_closing():
            return
        if self._head_too_large:
            status, reason, type_ = 431, "Request Header Fields Too Large", "headers_too_large"
            text = f"the request line and headers are over the {self.max_header_bytes}-byte limit"
        else:
            status, reason, type_ = 400, "Bad Request", "invalid_http"
            text = "the request is not valid HTTP/1.1"
        body = json.dumps({"detail": [problem(("request",), text, type_)]}).encode()
        head = [f"HTTP/1.1 {status} {reason}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [f"{name}: {value}\r\n".encode() for name, value in SECURITY_HEADERS.items()]
        head.append(
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def config(settings: Settings | None = None, **overrides: Any) -> uvicorn.Config:
    """uvicorn's config for the platform API, from settings; overrides for tests and benchmarks."""
    settings = settings or load_settings()
    HardenedProtocol.header_timeout_s = settings.header_read_timeout_seconds
    HardenedProtocol.max_header_bytes = settings.max_header_bytes
    options: dict[str, Any] = {
        "app": "service.main:app",
        "host": settings.api_host,
        "port": settings.api_port,
        "http": HardenedProtocol,
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
