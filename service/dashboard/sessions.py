"""Dashboard sign-ins, kept server-side in Redis so every API replica knows them and signing out ends them.

The browser holds only a random token in an HttpOnly, SameSite=Strict cookie; Redis holds, under the token's
SHA-256, which key signed in (its SHA-256, never the key) and the session's CSRF token. The key's scopes are
looked up in API_KEYS on every request, so removing or rotating a key ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from arq.connections import ArqRedis

from core import keys

COOKIE = "dashboard_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    token: str
    key_sha256: str  # hex: which API key signed in
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def open_session(redis: ArqRedis, key_sha256: str, ttl_s: int) -> Session:
    session = Session(secrets.token_urlsafe(32), key_sha256, secrets.token_urlsafe(32))
    record = json.dumps({"key_sha256": key_sha256, "csrf": session.csrf})
    await redis.set(keys.dashboard_session(_digest(session.token)), record, ex=ttl_s)
    return session


async def find_session(redis: ArqRedis, token: str) -> Session | None:
    raw = await redis.get(keys.dashboard_session(_digest(token)))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        bytes.fromhex(record["key_sha256"])
        return Session(token, str(record["key_sha256"]), str(record["csrf"]))
    except (ValueError, KeyError, TypeError):
        return None


async def close_session(redis: ArqRedis, token: str) -> None:
    await redis.delete(keys.dashboard_session(_digest(token)))


def session_token(headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> str | None:
    """The session cookie's value from raw ASGI headers; None without one."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            cookie_name, _, cookie_value = part.strip().partition("=")
            if cookie_name == COOKIE and cookie_value:
                return cookie_value
    return None
