"""What every response and every request's envelope gets: the `Host` header checked against ALLOWED_HOSTS
(a loopback API stays out of reach of DNS rebinding), and security headers on every answer. The `server`
header is uvicorn's: `python -m service.server` turns it off. service/guard.py applies both."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Message, Scope, Send

from service.errors import error_response
from settings import Settings

# A JSON API renders nothing: no script, no framing, no sniffing, no referrer. The interactive docs get
# their own policy (service/docs.py).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}


MAX_SEEN_HOSTS = 64


def host_name(host_header: str) -> str:
    """`Host` without its port, lower-cased; `[::1]:8000` -> `::1`. Brackets hold an IPv6 address and only a
    port may follow them: `[127.0.0.1].evil.example` or `[localhost]` is nobody's name (it comes back whole,
    matching no allowed host)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        inside, _, after = host[1:].partition("]")
        port_or_nothing = after == "" or (after[:1] == ":" and after[1:].isdigit())
        return inside if port_or_nothing and ":" in inside else host  # brackets hold IPv6 addresses only
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class TransportPolicy:
    """The `Host` check (400) and the security headers, for service/guard.py."""

    def __init__(self, settings: Settings) -> None:
        self.any_host = "*" in settings.allowed_hosts
        self.allowed = frozenset(host_name(h) for h in settings.allowed_hosts)
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        self.names = frozenset(name for name, _ in self.headers)
        self._seen: dict[bytes, bool] = {}  # raw Host values already allowed (`127.0.0.1:8000`, ...)

    def refusal(self, scope: Scope) -> Response | None:
        if self.any_host:
            return None
        host = None
        for name, value in scope["headers"]:
            if name == b"host":
                if host is not None:  # two Host headers: RFC 9112 says answer 400, whichever would be read
                    return error_response(400, "more than one Host header", "invalid_host")
                host = value
        host = host or b""
        allowed = self._seen.get(host)
        if allowed is None:
            allowed = host_name(host.decode("latin-1")) in self.allowed
            if allowed and len(self._seen) < MAX_SEEN_HOSTS:  # only good ones: a client cannot fill it
                self._seen[host] = True
        if allowed:
            return None
        return error_response(400, "unexpected Host header (see ALLOWED_HOSTS)", "invalid_host")

    def sending_headers(self, send: Send, request_id: bytes, response: Sent) -> Send:
        """`send`, adding the security headers a response does not set itself and the request's id, and noting
        the response's status in `response`."""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.status, response.started = message["status"], True
                headers = list(message.get("headers", ()))
                for name, _ in headers:
                    if name.lower() in self.names:  # the response sets one itself (the docs' own policy)
                        present = {name.lower() for name, _ in headers}
                        headers += [header for header in self.headers if header[0] not in present]
                        break
                else:  # the common case: one list added, no test per security header
                    headers += self.headers
                headers.append((b"x-request-id", request_id))
                message["headers"] = headers
            await send(message)

        return send_with_headers


class Sent:
    """What the guard learns of a response as it goes out."""

    __slots__ = ("started", "status")

    def __init__(self) -> None:
        self.status = 500  # none started: the app failed before answering
        self.started = False
