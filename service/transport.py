"""What every response and every request's envelope gets: the `Host` header checked against ALLOWED_HOSTS
(a loopback API stays out of reach of DNS rebinding), and security headers on every answer. The `server`
header is uvicorn's: `python -m service.server` turns it off."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def host_name(host_header: str) -> str:
    """`Host` without its port, lower-cased; `[::1]:8000` -> `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class TransportGuard:
    """Refuse an unexpected `Host` (400) and add the security headers to every response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.any_host = "*" in settings.allowed_hosts
        self.allowed = frozenset(host_name(h) for h in settings.allowed_hosts)
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name.decode() not in headers:
                        headers.raw.append((name, value))
                if "server" in headers:
                    del headers["server"]
            await send(message)

        if not self.any_host:
            host = next((value for name, value in scope["headers"] if name == b"host"), b"")
            if host_name(host.decode("latin-1")) not in self.allowed:
                response = error_response(400, "unexpected Host header (see ALLOWED_HOSTS)", "invalid_host")
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)
