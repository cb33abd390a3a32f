"""Every process says which Redis it uses (redacted URL, db, queue) and whether that Redis keeps anything on
disk; `make run` warns when it falls back on a Redis it did not start, which it then leaves running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from core.embedded_redis import RedisProcess, free_port, start_redis
from core.redis import persistence
from tests.support.launcher import start_launcher, wait_until_serving


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own that keeps nothing on disk (as a developer's default install may)."""
    server = start_redis(free_port(), tmp_path / "own-redis", appendonly=False)
    yield server
    server.stop()


@pytest.fixture
async def own_client(own_redis: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(own_redis.url)
    yield client
    await client.aclose()


async def test_persistence_reads_appendonly_then_snapshots(own_client: Redis) -> None:
    assert await persistence(own_client) == "none"
    await own_client.config_set("save", "900 1")
    assert await persistence(own_client) == "rdb"
    await own_client.config_set("appendonly", "yes")
    assert await persistence(own_client) == "aof"


async def test_persistence_is_unknown_when_config_is_forbidden(own_redis: RedisProcess, own_client: Redis) -> None:
    await own_client.execute_command("ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-config")
    limited = Redis.from_url(f"redis://app:secret@127.0.0.1:{own_redis.port}/0")
    try:
        assert await persistence(limited) == "unknown"
    finally:
        await limited.aclose()


async def test_make_run_on_a_redis_it_did_not_start_warns_it_is_shared_and_not_persistent(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    launcher = start_launcher(tmp_path, EMBEDDED_REDIS_PORT=str(own_redis.port), QUEUE_NAME="walk:queue")
    try:
        async with httpx.AsyncClient(base_url=launcher.api_url, timeout=10) as client:
            await wait_until_serving(launcher, client)
    finally:
        assert launcher.stop() == 0
    events = {e["event"]: e for e in launcher.events()}

    assert events["run.redis_shared"]["level"] == "warning"
    assert events["run.redis_shared"]["redis"] == own_redis.url
    for name in ("run.redis", "api.redis_connected"):
        line = events[name]
        assert line["level"] == "warning", line
        assert (line["redis"], line["db"], line["queue"], line["persistence"]) == (
            own_redis.url,
            0,
            "walk:queue",
            "none",
        )
    assert events["run.redis"]["embedded"] is False
    assert "run.redis_embedded" not in events
    assert own_redis.process.poll() is None  # not ours to stop


async def test_make_run_says_its_embedded_redis_persists(tmp_path: Path) -> None:
    launcher = start_launcher(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=launcher.api_url, timeout=10) as client:
            await wait_until_serving(launcher, client)
    finally:
        assert launcher.stop() == 0
    events = {e["event"]: e for e in launcher.events()}

    assert events["run.redis"]["level"] == "info"
    assert events["run.redis"]["persistence"] == "aof"
    assert events["run.redis"]["embedded"] is True
    assert events["api.redis_connected"]["persistence"] == "aof"
    assert "run.redis_shared" not in events


async def test_the_logged_url_hides_the_password(tmp_path: Path, own_redis: RedisProcess, own_client: Redis) -> None:
    await own_client.config_set("requirepass", "hunter2")
    url = f"redis://:hunter2@127.0.0.1:{own_redis.port}/0"
    launcher = start_launcher(tmp_path, REDIS_URL=url)
    try:
        async with httpx.AsyncClient(base_url=launcher.api_url, timeout=10) as client:
            await wait_until_serving(launcher, client)
    finally:
        assert launcher.stop() == 0
    assert "hunter2" not in launcher.text()
    events = {e["event"]: e for e in launcher.events()}
    assert events["run.redis"]["redis"] == f"redis://:***@127.0.0.1:{own_redis.port}/0"
