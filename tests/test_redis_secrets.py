"""`core/redis.py`: ACL and TLS options from settings, and every form of a secret in REDIS_URL redacted."""

from __future__ import annotations

import pytest

from core.redis import check_redis_settings, connection_options, redacted
from settings import Settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cr3t@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cr3t@h/0", "redis://user:***@h/0"),
        ("redis://s3cr3t@h:1/0", "redis://:***@h:1/0"),
        ("redis://h/0?password=s3cr3t&db=1", "redis://h/0?password=***&db=1"),
        ("unix:///tmp/r.sock?password=s3cr3t", "unix:///tmp/r.sock?password=***"),
        ("rediss://u:p%40ss@h:1/0?Password=x", "rediss://u:***@h:1/0?Password=***"),
    ],
)
def test_every_form_of_a_redis_secret_is_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "s3cr3t" not in redacted(url)


def test_settings_never_show_the_redis_password() -> None:
    settings = Settings(redis_url="redis://h:1/0", redis_username="platform-api", redis_password="s3cr3t")
    assert "s3cr3t" not in repr(settings)
    assert connection_options(settings) == {"username": "platform-api", "password": "s3cr3t"}


def test_tls_checks_the_certificate_and_the_hostname(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    settings = Settings(redis_url="rediss://redis.internal:6380/0", redis_ca_file=str(ca))
    options = connection_options(settings)
    assert options["ssl_cert_reqs"] == "required"
    assert options["ssl_check_hostname"] is True
    assert options["ssl_ca_certs"] == str(ca)
    checked = check_redis_settings(settings)
    assert checked.ssl and checked.ssl_check_hostname and checked.ssl_ca_certs == str(ca)
    assert "ssl_cert_reqs" not in connection_options(Settings(redis_url="redis://h:1/0"))


def test_security_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.api_keys == [] and settings.allow_anonymous is False
    assert settings.allowed_hosts == ["localhost", "127.0.0.1", "::1"]
    assert settings.max_request_bytes == settings.max_result_bytes == 1 << 20
    assert settings.rate_limit_per_minute == 60_000


def test_settings_repr_hides_a_password_in_the_url() -> None:
    assert "s3cr3t" not in repr(Settings(redis_url="redis://:s3cr3t@h:1/0"))


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:1/0?password=s3cr3t&username=api",
        "redis://api:s3cr3t@h:1/0",
        "unix:///tmp/r.sock?password=s3cr3t&username=api",
    ],
)
def test_the_health_check_reads_credentials_from_every_form_the_pools_read(url: str) -> None:
    """`arq --check` builds arq's RedisSettings, whose parser ignores `?password=`; the pools (redis-py's
    `from_url`) read it, so a worker ran but its health check could not sign in (found black-box)."""
    checked = check_redis_settings(Settings(redis_url=url))
    assert (checked.username, checked.password) == ("api", "s3cr3t")
