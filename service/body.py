"""The request body, read by one guard before any route sees it: bounded in size (413, checked while it
streams, chunked or not, so a huge body is never read whole), in time (408, so slow senders do not hold
connections forever), JSON only (415), and strictly parsed (422 naming the field). The dashboard's sign-in and
sign-out forms are the one exception to JSON: they post a form, bounded the same way."""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from service.dashboard.paths import FORM_PATHS
from service.errors import PARSED_BODY, error_response
from service.read_deadlines import ReadDeadlines
from service.strict_json import InputRejected, parse_body
from settings import Settings

CLOSE = {"Connection": "close"}  # the rest of the body is never read: the connection cannot be reused
BODY_DEPTH_OVER_KWARGS = 3  # {"jobs": [{"kwargs": ...}]}


class BodyReader:
    """Reads and checks a request's body for service/guard.py; the app then gets it replayed."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.max_request_bytes
        self.timeout_s = settings.body_read_timeout_seconds
        self.deadlines = ReadDeadlines(self.timeout_s)
        self.max_depth = settings.max_kwargs_depth + BODY_DEPTH_OVER_KWARGS

    async def read(self, scope: Scope, receive: Receive) -> tuple[Response | None, Receive | None]:
        """(None, receive for the app) to go on; (answer, None) to refuse; (None, None): the client left."""
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
            return None, receive
        if length is not None and length > self.max_bytes:
            return self._too_large(), None
        media = content_type.split(b";", 1)[0].strip().lower()
        is_form = media == b"application/x-www-form-urlencoded" and scope["path"] in FORM_PATHS
        is_json = media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
        if not is_form and not is_json:
            msg = "the body must be JSON, sent as `Content-Type: application/json`"
            return error_response(415, msg, headers=CLOSE), None
        task = asyncio.current_task()
        assert task is not None
        self.deadlines.begin(task)
        chunks: list[bytes] = []
        size = 0
        body: bytes | None = None  # the whole body, or None as soon as it grows past the limit
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None, None  # nobody to answer
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    break
                if not message.get("more_body", False):
                    body = b"".join((*chunks, chunk)) if chunks else chunk
                    break
                chunks.append(chunk)
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise
            task.uncancel()
            return error_response(408, f"the body did not arrive within {self.timeout_s:g} s", headers=CLOSE), None
        finally:
            self.deadlines.end(task)
        if body is None:
            return self._too_large(), None
        if is_form:
            return None, _replay(body, receive)
        try:
            scope[PARSED_BODY] = (body, parse_body(body, self.max_depth))
        except InputRejected as exc:
            return error_response(422, exc.msg, exc.type_, exc.loc), None
        return None, _replay(body, receive)

    def _too_large(self) -> Response:
        return error_response(413, f"the body is over the {self.max_bytes}-byte limit", headers=CLOSE)


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
