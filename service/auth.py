"""API keys with scopes, checked before anything else reads the request.

Secure by default: the guard (service/guard.py) checks every path the app serves, routes added later and mounted apps
included. A route needs `read` for GET/HEAD and `admin` for any other method, unless it declares otherwise
with `@requires(Scope.enqueue)` or `@public`. A key is only ever held as its SHA-256 and compared in constant
time; with no keys configured, only loopback clients are served (unless ALLOW_ANONYMOUS).

The dashboard's browser signs in once with a key (service/dashboard/) and then presents a session cookie
instead: it carries the key's scopes, and a state-changing request that relies on it must also carry the
session's CSRF token in `X-CSRF-Token` (a cookie is sent by the browser on its own; the header is not).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from fastapi.routing import iter_route_contexts
from redis.exceptions import RedisError
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, compile_path
from starlette.types import Scope as AsgiScope

from core.redis import PoolExhausted
from service.dashboard.sessions import CSRF_HEADER, Session, find_session, session_token
from service.errors import RETRY_AFTER_S, error_response, pool_exhausted_response
from service.limits import RateLimiter
from settings import ApiKeyEntry, Settings

F = TypeVar("F", bound=Callable[..., Any])
SCOPE_ATTRIBUTE: Final = "__required_scope__"
SIGN_IN_ATTRIBUTE: Final = "__sign_in_at__"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC: Final = "public"
ANY_KEY: Final = "authenticated"  # paths no route serves (404) and wrong methods (405): any valid key


class Scope(StrEnum):
    enqueue = "enqueue"
    read = "read"
    admin = "admin"


class AuthMode(StrEnum):
    keys = "keys"
    loopback = "loopback-only"
    anonymous = "anonymous"


def requires(scope: Scope) -> Callable[[F], F]:
    """Declare the scope a route needs, instead of its method's default (read for GET, admin otherwise)."""

    def declare(endpoint: F) -> F:
        setattr(endpoint, SCOPE_ATTRIBUTE, scope)
        return endpoint

    return declare


def public(endpoint: F) -> F:
    """Declare a route open to everyone (liveness and readiness only)."""
    setattr(endpoint, SCOPE_ATTRIBUTE, PUBLIC)
    return endpoint


def sign_in_at(url: str) -> Callable[[F], F]:
    """Declare a browser page: a request without credentials is sent to `url` to sign in (303), not 401."""

    def declare(endpoint: F) -> F:
        setattr(endpoint, SIGN_IN_ATTRIBUTE, url)
        return endpoint

    return declare


class RouteFacts:
    """What the guard asks of a request's route on every request, read once per route: the scope its endpoint
    declares (`@requires`, `@public`), the page a browser signs in at (`@sign_in_at`) and its template (the
    HTTP metrics' label). A FastAPI route context answers each of these through two properties and a getattr."""

    __slots__ = ("declared", "route", "sign_in", "template")

    def __init__(self, route: Any) -> None:
        endpoint = getattr(route, "endpoint", None)
        declared = getattr(endpoint, SCOPE_ATTRIBUTE, None)
        self.route = route
        self.declared = None if declared is None else str(declared)
        self.sign_in: str | None = getattr(endpoint, SIGN_IN_ATTRIBUTE, None)
        self.template: str | None = getattr(route, "path_format", None)

    def required_scope(self, method: str) -> str:
        """The scope a request for this route needs: declared on its endpoint, else its method's default."""
        if self.route is None:
            return ANY_KEY
        if self.declared is not None:
            return self.declared
        return Scope.read if method in ("GET", "HEAD") else Scope.admin


NO_ROUTE = RouteFacts(None)  # paths no route serves


def _sign_in_redirect(route: RouteFacts, scope: AsgiScope) -> Response | None:
    if route.sign_in is None:
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    next_url = scope["path"] + ("?" + query if query else "")
    return RedirectResponse(f"{route.sign_in}?{urlencode({'next': next_url})}", 303)


def required_scope(route: Any, method: str) -> str:
    """The scope a request for `route` needs: declared on its endpoint, else its method's default."""
    return RouteFacts(route).required_scope(method)


def flat_routes(routes: Iterable[BaseRoute]) -> list[Any]:
    """Every route the app serves, included routers flattened (FastAPI's public `iter_route_contexts`)."""
    return list(iter_route_contexts(list(routes)))


class RouteTable:
    """The app's routes as (path regex, methods, facts), in routing order: asking Starlette's own
    `matches` costs about 10 µs a route on the hot path, a compiled regex a fraction of one."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self.entries: list[tuple[Any, frozenset[str] | None, RouteFacts]] = []
        for route in flat_routes(routes):
            path_format = getattr(route, "path_format", None)
            regex = compile_path(path_format)[0] if isinstance(path_format, str) and route.methods else None
            self.entries.append((regex, frozenset(route.methods) if regex else None, RouteFacts(route)))

    def match(self, scope: AsgiScope) -> tuple[RouteFacts, bool]:
        """The route the router will pick for this request (NO_ROUTE when no route's path matches), and whether
        it serves this method."""
        path, method = scope["path"], scope.get("method", "GET")
        partial = None
        for regex, methods, facts in self.entries:
            if regex is not None:
                if regex.match(path) is None:
                    continue
                if methods is not None and method in methods:
                    return facts, True
                if partial is None:
                    partial = facts
                continue
            match, _ = facts.route.matches(scope)  # a mount, or anything else: ask it
            if match is Match.FULL:
                return facts, True
            if match is Match.PARTIAL and partial is None:
                partial = facts
        return partial or NO_ROUTE, False


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and scopes, or `anonymous` with every scope."""

    name: str
    scopes: frozenset[str]


ANONYMOUS = Principal("anonymous", frozenset(Scope))


MAX_VERIFIED_KEYS = 1024


class KeyRing:
    """The configured keys, held as their SHA-256. A key presented for the first time is hashed, its digest
    looked up and the entry found compared with it in constant time; the lookup's timing can only tell of the
    digest, and steering a digest takes SHA-256 preimages.

    A key that matched is remembered as sent, so its next requests skip the hash: in a served API, hashing
    cost about 5 µs a request (the digest's code is cold by the time each request runs), more than the rest
    of authentication together. A remembered key is found by the dict's keyed hash (SipHash, random per
    process) and then compared in constant time too. Only keys that matched are remembered, at most one
    form per configured key (tokens are stripped), in the memory of the process that receives them anyway."""

    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        for entry in entries:
            digest = bytes.fromhex(entry.sha256)
            self._by_digest[digest] = (digest, Principal(entry.name, frozenset(entry.scopes)))
        self._verified: dict[bytes, tuple[bytes, Principal]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def find(self, key: str | bytes) -> Principal | None:
        raw = key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")
        verified = self._verified.get(raw)
        if verified is not None and hmac.compare_digest(raw, verified[0]):
            return verified[1]
        principal = self.find_digest(hashlib.sha256(raw).digest())
        if principal is not None and len(self._verified) < MAX_VERIFIED_KEYS:
            self._verified[raw] = (raw, principal)
        return principal

    def find_digest(self, digest: bytes) -> Principal | None:
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(digest, found[0]):
            return None
        return found[1]


class Conflicting(Enum):
    """`presented_key`'s answer when a request presents different keys."""

    CONFLICTING = "conflicting"


CONFLICTING: Final = Conflicting.CONFLICTING


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | Conflicting | None:
    """`Authorization: Bearer <key>` or `X-API-Key: <key>`, as sent; None when neither is there, CONFLICTING
    when the request presents two different keys (which one a proxy or a log would see is anyone's guess)."""
    found = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            key = token.strip() if scheme.lower() == b"bearer" else None
        elif name == b"x-api-key":
            key = value.strip()
        else:
            continue
        if not key:  # an empty key, or another scheme: not a key
            continue
        if found is not None and key != found:
            return CONFLICTING
        found = key
    return found


def is_loopback(client: tuple[str, int] | list[Any] | None) -> bool:
    """A client on this host: a loopback address, or a Unix socket (no address at all)."""
    if not client:
        return True
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def auth_mode(settings: Settings) -> AuthMode:
    if settings.api_keys:
        return AuthMode.keys
    return AuthMode.anonymous if settings.allow_anonymous else AuthMode.loopback


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}
MAX_KNOWN_ROUTES = 1024


class Pending(Enum):
    """`Authorizer.admit_now` cannot tell without Redis."""

    PENDING = "pending"


PENDING: Final = Pending.PENDING


class Authorizer:
    """Authenticate, authorize and rate-limit a request before its body is read (service/guard.py runs it)."""

    def __init__(self, settings: Settings, limiter: RateLimiter, routes: Callable[[], Any]) -> None:
        self.keys = KeyRing(settings.api_keys)
        self.mode = auth_mode(settings)
        self.limiter = limiter
        self.routes = routes  # the app's routes, compiled on the first request (every route exists by then)
        self._table: RouteTable | None = None
        self._facts: dict[int, RouteFacts] = {}  # a mounted platform's routes (`facts_of`), by id

    def route_of(self, scope: AsgiScope) -> RouteFacts:
        """The route the router will pick for this request (NO_ROUTE when no route's path matches)."""
        if self._table is None:
            self._table = RouteTable(self.routes())
        return self._table.match(scope)[0]

    def facts_of(self, route: Any) -> RouteFacts:
        """The facts of a route the router already picked (a mounted platform's, service/guard.py), read once."""
        facts = self._facts.get(id(route))
        if facts is None or facts.route is not route:
            if len(self._facts) >= MAX_KNOWN_ROUTES:  # routes of apps built and dropped (tests): start over
                self._facts.clear()
            facts = self._facts[id(route)] = RouteFacts(route)
        return facts

    def admit_now(self, scope: AsgiScope, route: RouteFacts) -> Response | Pending | None:
        """`refusal` without a coroutine, for the common case: a key, or this API's mode, and a rate-limit token
        already in hand. PENDING when only Redis can tell (a dashboard session, a new share of the rate limit):
        then await `refusal`."""
        needed = route.required_scope(scope.get("method", "GET"))
        if needed == PUBLIC:
            return None
        principal, refusal = self._authenticate(scope)
        if refusal is not None:
            return _refused(refusal, route, scope)
        if principal is None:  # a dashboard session's cookie instead of a key
            return PENDING
        if (lacking := _lacks_scope(principal, needed)) is not None:
            return lacking
        if not self.limiter.take(principal.name):
            return PENDING
        scope.setdefault("state", {})["principal"] = principal
        return None

    async def refusal(self, scope: AsgiScope, route: RouteFacts) -> Response | None:
        """None to let the request through (its principal in `scope["state"]`), else the answer."""
        needed = route.required_scope(scope.get("method", "GET"))
        if needed == PUBLIC:
            return None
        try:
            principal, refusal = self._authenticate(scope)
            if principal is None and refusal is None:  # a dashboard session's cookie instead of a key
                principal, refusal = await self._session_principal(scope)
            if refusal is not None:
                return _refused(refusal, route, scope)
            assert principal is not None
            if (lacking := _lacks_scope(principal, needed)) is not None:
                return lacking
            retry_after = await self.limiter.admit(principal.name, scope)
        except PoolExhausted as exc:
            return pool_exhausted_response(exc)
        except (RedisError, OSError) as exc:
            msg = f"Redis is unavailable ({type(exc).__name__}); retry shortly"
            return error_response(503, msg, "redis_unavailable", headers={"Retry-After": str(RETRY_AFTER_S)})
        if retry_after is not None:
            msg = f"rate limit of {self.limiter.per_minute} requests per minute reached; retry in {retry_after} s"
            return error_response(429, msg, "rate_limited", headers={"Retry-After": str(retry_after)})
        scope.setdefault("state", {})["principal"] = principal
        return None

    def _authenticate(self, scope: AsgiScope) -> tuple[Principal | None, Response | None]:
        """Who calls, by key or by this API's mode; (None, None) when a dashboard session's cookie is presented
        instead of a key: only Redis knows it (`_session_principal`). Not a coroutine: most requests never wait."""
        if self.mode is AuthMode.anonymous:
            return ANONYMOUS, None
        if self.mode is AuthMode.loopback:
            if is_loopback(scope.get("client")):
                return ANONYMOUS, None
            msg = "no API keys are configured, so only clients on this host are served (see API_KEYS)"
            return None, error_response(403, msg, "loopback_only")
        key = presented_key(scope["headers"])
        if key is CONFLICTING:
            msg = "the request presents different API keys; present one"
            return None, error_response(401, msg, "unauthorized", headers=UNAUTHORIZED_HEADERS)
        if key is None:
            if session_token(scope["headers"]) is not None:
                return None, None
            msg = "an API key is required: `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            return None, error_response(401, msg, "unauthorized", headers=UNAUTHORIZED_HEADERS)
        principal = self.keys.find(key)
        if principal is None:
            return None, error_response(401, "unknown API key", "unauthorized", headers=UNAUTHORIZED_HEADERS)
        return principal, None

    async def _session_principal(self, scope: AsgiScope) -> tuple[Principal | None, Response | None]:
        """The principal of a dashboard session cookie; a state-changing request must prove it comes from the
        dashboard's own page with the session's CSRF token (a header another site cannot make a browser send)."""
        token = session_token(scope["headers"])
        assert token is not None
        pool = scope.get("state", {}).get("pool")
        session = await find_session(pool, token) if pool is not None else None
        principal = self.keys.find_digest(bytes.fromhex(session.key_sha256)) if session is not None else None
        if session is None or principal is None:
            msg = "the dashboard session has ended; sign in again"
            return None, error_response(401, msg, "unauthorized", headers=UNAUTHORIZED_HEADERS)
        if scope.get("method", "GET") not in SAFE_METHODS and not _csrf_matches(scope, session):
            msg = f"a request made with a dashboard session needs its CSRF token in {CSRF_HEADER!r}"
            return None, error_response(403, msg, "csrf_failed")
        scope.setdefault("state", {})["session"] = session
        return principal, None


def _refused(refusal: Response, route: RouteFacts, scope: AsgiScope) -> Response:
    """A 401 on a browser page becomes the way to its sign-in page."""
    return (_sign_in_redirect(route, scope) or refusal) if refusal.status_code == 401 else refusal


def _lacks_scope(principal: Principal, needed: str) -> Response | None:
    if needed == ANY_KEY or needed in principal.scopes:
        return None
    return error_response(403, f"this key lacks the {str(needed)!r} scope", "forbidden")


def _csrf_matches(scope: AsgiScope, session: Session) -> bool:
    sent = next((value for name, value in scope["headers"] if name == CSRF_HEADER.encode()), b"")
    return hmac.compare_digest(sent, session.csrf.encode())
