"""The request body, read by one guard before any route sees it: bounded in size (413, checked while it
streams, chunked or not, so a huge body is never read whole), in time (408, so slow senders do not hold
connections forever), JSON only (415), and strictly parsed (422 naming the field)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response
from service.strict_json import InputRejected, parse_body
from settings import Settings

CLOSE = {"Connection": "close"}  # the rest of the body is never read: the connection cannot be reused
BODY_DEPTH_OVER_KWARGS = 3  # {"jobs": [{"kwargs": ...}]}


class ClientGone(Exception):
    """The client disconnected while sending its body: there is nobody to answer."""


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class BodyGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.max_request_bytes
        self.timeout_s = settings.body_read_timeout_seconds
        self.max_depth = settings.max_kwargs_depth + BODY_DEPTH_OVER_KWARGS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-type":
                content_type = value
        if not chunked and not length:  # no body: nothing to guard
            await self.app(scope, receive, send)
            return
        if length is not None and length > self.max_bytes:
            await self._refuse(scope, receive, send, 413, f"the body is over the {self.max_bytes}-byte limit")
            return
        if not _is_json(content_type):
            msg = "the body must be JSON, sent as `Content-Type: application/json`"
            await self._refuse(scope, receive, send, 415, msg)
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._read(receive)
        except TimeoutError:
            msg = f"the body did not arrive within {self.timeout_s:g} s"
            await self._refuse(scope, receive, send, 408, msg)
            return
        except ClientGone:
            return
        if body is None:
            await self._refuse(scope, receive, send, 413, f"the body is over the {self.max_bytes}-byte limit")
            return
        try:
            parse_body(body, self.max_depth)
        except InputRejected as exc:
            await error_response(422, exc.msg, exc.type_, exc.loc)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it grows past the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, msg: str) -> None:
        await error_response(status, msg, headers=CLOSE)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the real channel (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
