"""Every knob of the platform, read once from the environment (and an optional `.env`).

The API and the worker read this same class, so they can never disagree about the queue,
the codec limits or the Redis they talk to.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from arq.connections import RedisSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SCOPES = ("enqueue", "read", "admin")
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "::1"]


class ApiKeyEntry(BaseModel):
    """One entry of `API_KEYS`: the key itself is never stored, only its SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    scopes: tuple[Literal["enqueue", "read", "admin"], ...] = Field(min_length=1)


class Settings(BaseSettings):
    """Platform settings; each field is the environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    redis_url: str = Field(
        "redis://localhost:6379/0",
        repr=False,  # it may hold a password; logs show core.redis.redacted(url)
        description="Redis to use; `rediss://` for TLS, `redis://:password@host:port/db` for auth.",
    )
    queue_name: str = Field("arq:queue", min_length=1, description="The arq queue (a Redis sorted set).")
    job_timeout_seconds: float = Field(300, gt=0, description="Default per-try timeout of a job.")
    keep_result_seconds: float = Field(
        86_400, gt=0, description="Default time a job's result is kept; 0 would drop a result the moment it is made."
    )
    job_expires_seconds: float = Field(
        30 * 86_400,
        gt=0,
        description="A queued job not started within this long after its scheduled time expires (arq's expiry); "
        "generous so a long backlog or worker outage loses nothing.",
    )
    max_tries: int = Field(5, ge=1, description="Default number of times a job is tried.")
    max_jobs: int = Field(50, ge=1, description="Jobs one worker process runs concurrently (and claims in one batch).")
    poll_delay_seconds: float = Field(
        0.1, gt=0, le=5, description="How often an idle worker looks for due jobs (and deferred jobs come due)."
    )
    retry_delay_seconds: float = Field(1.0, ge=0, description="Delay before the first retry; doubles each try.")
    retry_max_delay_seconds: float = Field(300, ge=0, description="Upper bound of the retry delay.")
    retry_jitter: float = Field(0.1, ge=0, le=1, description="Random spread of each retry delay, as a fraction.")
    job_lease_seconds: float = Field(
        10,
        ge=2,
        le=300,
        description="A running job's claim lasts this long unless its worker renews it; a crashed worker's "
        "jobs run again after at most this long.",
    )
    dead_letter_ttl_seconds: float = Field(
        0, ge=0, description="How long dead letters are kept; 0 keeps them until deleted."
    )
    shutdown_grace_seconds: int = Field(
        30, ge=0, description="On SIGTERM, how long running jobs may finish before they are cancelled and requeued."
    )
    health_check_interval_seconds: float = Field(
        10,
        gt=0,
        le=20,
        description="How often a worker refreshes its health and heartbeat keys; a dead worker drops out of "
        "`/v1/workers` after three missed refreshes, so at most 20 keeps that within a minute.",
    )
    redis_max_connections: int = Field(
        64, ge=2, description="Connections one API process may hold; beyond it a request waits (then 503)."
    )
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Connect and command timeout of the API's Redis calls (then 503)."
    )
    max_result_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="A job result larger than this (encoded as JSON) fails the try (`result_too_large`) and is "
        "not stored.",
    )
    result_wait_max_seconds: float = Field(30, ge=0, description="Upper bound of `GET /v1/jobs/{id}/result?wait=N`.")
    sse_keepalive_seconds: float = Field(
        15,
        gt=0,
        le=300,
        description="An event stream (`/v1/jobs/{id}/events`, `/v1/events`) sends a comment this "
        "often while no event comes, so proxies keep it open and a lost client is noticed.",
    )
    heartbeat_every_seconds: int = Field(
        60, ge=1, description="Schedule of the `record_heartbeat` cron job; must divide 60 or be a multiple of 60."
    )
    hold_grace_seconds: float = Field(
        30,
        ge=0.1,
        le=3600,
        description="A job a route enqueued to run after its response is held in Redis until the response is sent; "
        "if the API process dies first, the job is released by the queue itself after this long.",
    )
    hold_release_window_ms: float = Field(
        0,
        ge=0,
        le=1000,
        description="0: each request releases its `after_response` jobs before it ends. Above 0: releases are "
        "written together, one Redis call for every request that ended within this many ms, and a released job "
        "is due up to that much later (a read right after the answer may find it still held).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        None, description="`json` or `console`; unset means console on a terminal, json otherwise."
    )
    job_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["jobs"],
        description="Comma-separated modules whose jobs are registered, e.g. `jobs,myapp.tasks`.",
    )
    data_dir: str = Field(".data", description="Where the embedded Redis of `make run` keeps its append-only file.")
    embedded_redis_port: int = Field(
        6379,
        ge=1,
        le=65535,
        description="With REDIS_URL unset, `make run` uses the Redis on 127.0.0.1 at this port, or starts one there.",
    )
    api_host: str = Field("127.0.0.1", description="Address `make run` serves the API on.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port `make run` serves the API on.")

    # Security (docs/security.md)
    api_keys: list[ApiKeyEntry] = Field(
        default_factory=list,
        description='JSON list of `{"name", "sha256", "scopes"}`; `make key` mints one. Empty: loopback clients '
        "only, unless ALLOW_ANONYMOUS.",
    )
    allow_anonymous: bool = Field(
        False, description="With no API_KEYS, serve every client without a key (not only loopback ones)."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Comma-separated names the `Host` header may carry (port ignored); `*` allows any.",
    )
    api_publish_host: str | None = Field(
        None,
        description="The host address the API's port is published on (docker-compose.yml passes its own "
        "API_PUBLISH_HOST, default 127.0.0.1); anything but loopback needs API_KEYS, or the API does not start.",
    )
    max_request_bytes: int = Field(1 << 20, ge=1024, description="Largest request body; bigger is 413.")
    max_kwargs_bytes: int = Field(64 << 10, ge=64, description="Largest job kwargs, as JSON; bigger is 422.")
    max_kwargs_depth: int = Field(32, ge=1, le=100, description="Deepest nesting of job kwargs; deeper is 422.")
    header_read_timeout_seconds: float = Field(
        10, gt=0, description="Time a client has to send a request's headers (`python -m service.server`)."
    )
    body_read_timeout_seconds: float = Field(10, gt=0, description="Time a client has to send a request body; 408.")
    max_header_bytes: int = Field(
        64 << 10,
        ge=1024,
        description="Largest request line and headers together (`python -m service.server`); bigger is 431.",
    )
    rate_limit_per_minute: int = Field(
        60_000, ge=0, description="Requests per key per minute, shared by every API process through Redis; 0: off."
    )
    max_waits_per_key: int = Field(
        32, ge=1, description="Result waits (`?wait=`) and event streams one key may hold open per API process."
    )
    dashboard_session_seconds: int = Field(
        8 * 3600,
        ge=60,
        le=30 * 86_400,
        description="How long a dashboard sign-in lasts (its session is kept in Redis; signing out ends it).",
    )
    redis_username: str | None = Field(None, description="Redis ACL user; overrides one given in REDIS_URL.")
    redis_password: SecretStr | None = Field(None, description="Redis password; overrides one given in REDIS_URL.")
    redis_ca_file: str | None = Field(
        None, description="CA bundle to verify a `rediss://` server with (hostname checking stays on)."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str) -> str:
        if urlparse(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:  # the worker parses it with arq at import; a bad port or db must fail here, naming the variable
            RedisSettings.from_dsn(value)
        except Exception as exc:
            raise ValueError(f"not a valid Redis URL ({exc})") from None
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in re.split(r"[,\s]+", value) if part.strip()]
        return value

    @field_validator("api_publish_host")
    @classmethod
    def _wide_publication_needs_keys(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Published beyond this host, the API refuses to start without keys: ALLOW_ANONYMOUS (which Docker's
        port mapping needs, since no client is on the container's loopback) is then never what serves it."""
        if value is None or info.data.get("api_keys"):
            return value
        try:
            local = value.strip().lower() == "localhost" or ipaddress.ip_address(value.strip()).is_loopback
        except ValueError:
            local = False
        if not local:
            raise ValueError(f"{value!r} is not a loopback address: set API_KEYS (`make key`) to publish there")
        return value

    @field_validator("api_keys")
    @classmethod
    def _unique_keys(cls, value: list[ApiKeyEntry]) -> list[ApiKeyEntry]:
        names = [entry.name for entry in value]
        digests = [entry.sha256.lower() for entry in value]
        if len(set(names)) != len(names) or len(set(digests)) != len(digests):
            raise ValueError("each key needs its own name and its own sha256")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _empty_format_is_auto(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("job_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("job_modules")
    @classmethod
    def _at_least_one_module(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one module")
        return value

    @field_validator("heartbeat_every_seconds")
    @classmethod
    def _cron_friendly(cls, value: int) -> int:
        if (value < 60 and 60 % value) or (value >= 60 and (value % 60 or 60 % (value // 60))):
            raise ValueError("must divide 60 (1..60) or be 60 times a divisor of 60")
        return value


class SettingsError(SystemExit):
    """Raised at start-up when an environment variable holds an invalid value."""


def check_job_modules(settings: Settings) -> None:
    """Import each JOB_MODULES entry up front, so a typo stops an entry point with one line naming the
    setting instead of two chained tracebacks from the registry's import."""
    for module in settings.job_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SettingsError(f"invalid setting JOB_MODULES: cannot import {module!r} ({exc})") from None


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"invalid setting {'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        ]
        raise SettingsError("\n".join(lines)) from None
