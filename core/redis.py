"""Redis connections from settings: arq's RedisSettings for the worker, a pool for the API.

Both share one rule: every call has a timeout, and a dropped connection is retried with backoff
instead of bringing the process down.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import structlog
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import codec
from settings import Settings

log = structlog.get_logger("redis")
T = TypeVar("T")
# First probe after 10 s idle, then every 5 s; 3 unanswered probes drop the connection (Linux names).
KEEPALIVE_PROBES = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


def _platform_redis(connections: ConnectionPool, settings: Settings) -> ArqRedis:
    """An arq client on these connections that writes jobs the platform's way (JSON, queue, expiry)."""
    return ArqRedis(
        connections,
        job_serializer=codec.dumps,
        job_deserializer=codec.loads,
        default_queue_name=settings.queue_name,
        expires_extra_ms=int(settings.job_expires_seconds * 1000),
    )


def connection_options(settings: Settings) -> dict[str, Any]:
    """ACL credentials and TLS options from settings, for redis-py's `from_url` (the URL's own win there).

    `rediss://` always verifies the server's certificate and its hostname (redis-py checks no hostname
    unless asked), against REDIS_CA_FILE when given, else the system's CAs.
    """
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if urlparse(settings.redis_url).scheme == "rediss":
        options.update(ssl_cert_reqs="required", ssl_check_hostname=True, ssl_ca_certs=settings.redis_ca_file)
    return options


def check_redis_settings(settings: Settings) -> RedisSettings:
    """For `arq --check worker.WorkerSettings`: plain settings, so a health check never waits for Redis."""
    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    redis_settings.conn_timeout = max(1, int(settings.redis_timeout_seconds))
    redis_settings.conn_retries = 0
    options = connection_options(settings)
    in_url = parse_url(settings.redis_url)  # redis-py's reading, as the pools': arq's skips `?password=`
    redis_settings.username = redis_settings.username or in_url.get("username") or options.get("username")
    redis_settings.password = redis_settings.password or in_url.get("password") or options.get("password")
    if redis_settings.ssl:
        redis_settings.ssl_cert_reqs = "required"
        redis_settings.ssl_check_hostname = True
        redis_settings.ssl_ca_certs = settings.redis_ca_file
    return redis_settings


class LoggedRetry(Retry):
    """Retry forever with backoff, and say so in the log (at most once a second) while Redis is away."""

    _last_logged = 0.0

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]) -> T:
        async def logged_fail(error: RedisError) -> None:
            now = time.monotonic()
            if now - LoggedRetry._last_logged >= 1:
                LoggedRetry._last_logged = now
                log.warning("redis.unavailable", error=type(error).__name__, retrying=True)
            await fail(error)

        return await super().call_with_retry(do, logged_fail)


def open_worker_pool(settings: Settings) -> ArqRedis:
    """The worker's pool: it rides out Redis outages, retrying every command forever with capped backoff
    (a finished job waits to be recorded rather than be lost). TCP keepalive probes turn a half-open
    connection into an error, then a reconnect, within about 25 s instead of a silent hang. (A read
    timeout would do it too, but redis-py's can swallow the cancel of a blocking read at shutdown.)"""
    connections = ConnectionPool.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_keepalive=True,
        socket_keepalive_options=KEEPALIVE_PROBES,
        retry=LoggedRetry(ExponentialBackoff(cap=2.0, base=0.05), retries=-1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **connection_options(settings),
    )
    return _platform_redis(connections, settings)


class PoolExhausted(RedisConnectionError):
    """No connection of the API's pool came free within its timeout: Redis is fine, the process is busy."""


class BoundedConnectionPool(ConnectionPool):
    """At most `max_connections`; a caller waits up to `timeout` for a free one instead of failing.

    redis-py's BlockingConnectionPool does the same through `asyncio.wait_for` on every command, a task
    per call that showed as a fourfold p99 under load; a semaphore costs nothing until the pool is full.
    """

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slots = asyncio.Semaphore(self.max_connections)
        self._wait_s = timeout

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self._wait_s)
            except TimeoutError:
                raise PoolExhausted(f"no free Redis connection in the pool within {self._wait_s:g} s") from None
        else:
            await self._slots.acquire()
        try:
            return await super().get_connection(*args, **kwargs)
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        self._slots.release()


def open_api_pool(settings: Settings) -> ArqRedis:
    """The API's pool: short timeouts so a lost Redis becomes a prompt 503, one quick reconnect try,
    and at most REDIS_MAX_CONNECTIONS connections (a request waits for a free one, up to the timeout).

    Built without a ping, so the API starts (and answers 503) even while Redis is down.
    """
    connections = BoundedConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        retry_on_error=[RedisConnectionError],
        health_check_interval=15,
        **connection_options(settings),
    )
    return _platform_redis(connections, settings)


_SECRET_PARAMS = {"password", "pass", "pwd", "auth", "token", "secret"}


def redacted(url: str) -> str:
    """The Redis URL with every form of a secret hidden, for logs and messages: the userinfo password
    (`redis://user:pw@host`, `redis://:pw@host`, `redis://pw@host`, which redis-py also reads as a
    password) and query parameters such as `?password=`. A URL that does not parse is hidden whole."""
    try:
        parts = urlparse(url)
        _, at, hostport = parts.netloc.rpartition("@")
        netloc = parts.netloc
        if at:
            username = parts.username if parts.password is not None else None
            netloc = f"{username or ''}:***@{hostport}" if username else f":***@{hostport}"
        query = [
            (name, "***" if name.lower() in _SECRET_PARAMS else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        rebuilt = urlunparse(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
        if url.startswith(f"{parts.scheme}://") and not rebuilt.startswith(f"{parts.scheme}://"):
            rebuilt = f"{parts.scheme}://" + rebuilt[len(parts.scheme) + 1 :]  # keep `unix:///path` as given
        return rebuilt
    except ValueError:
        return "<unparseable Redis URL, hidden>"


async def persistence(redis: Redis) -> str:
    """How this Redis keeps data on disk: `aof`, `rdb` (snapshots only), `none`, or `unknown` when CONFIG
    is forbidden (a managed Redis, an ACL user without it)."""
    try:
        appendonly = await redis.config_get("appendonly")
        save = await redis.config_get("save")
    except ResponseError:
        return "unknown"

    def value(reply: dict[Any, Any], name: str) -> str:
        raw = reply.get(name, reply.get(name.encode(), b""))
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    if value(appendonly, "appendonly") == "yes":
        return "aof"
    return "rdb" if value(save, "save").strip() else "none"


async def log_redis_in_use(redis: Redis, settings: Settings, logger: Any, event: str, **fields: Any) -> None:
    """Say which Redis the process uses (redacted URL, db, queue) and whether it persists; a Redis that keeps
    nothing on disk is a warning: a restart of it loses every queued job and result."""
    # A named ACL user is a least-privilege one (the README's ACL): it has no CONFIG, so do not try.
    acl_user = settings.redis_username or urlparse(settings.redis_url).username
    kept = "unknown" if acl_user else await persistence(redis)
    line = {
        "redis": redacted(settings.redis_url),
        "db": RedisSettings.from_dsn(settings.redis_url).database,
        "queue": settings.queue_name,
        "persistence": kept,
        **fields,
    }
    if kept == "none":
        logger.warning(event, **line, risk="nothing is kept on disk: a Redis restart loses every job")
    else:
        logger.info(event, **line)
