"""The whole flow (enqueue -> worker runs -> result read) as the least-privilege ACL users that
core/redis_acl.py states and the README shows, on the suite's own redis-server; and what they may not do."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from core.redis_acl import ROLES, acl_rules
from tests.conftest import api_client, build_worker, make_settings

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}
PASSWORDS = {role: secrets.token_urlsafe(16) for role in ROLES}


@pytest.fixture
async def acl_users(redis: ArqRedis) -> AsyncIterator[None]:
    for key, role in ROLES.items():
        await redis.execute_command("ACL", "SETUSER", role.name, *acl_rules(role, "arq:queue", PASSWORDS[key]))
    await redis.execute_command("ACL", "LOG", "RESET")
    yield
    for role in ROLES.values():
        await redis.execute_command("ACL", "DELUSER", role.name)


async def denials(redis: ArqRedis) -> list[str]:
    entries = await redis.execute_command("ACL", "LOG")
    users = {role.name for role in ROLES.values()}
    found = []
    for entry in entries:
        fields = dict(zip(entry[::2], entry[1::2], strict=False)) if isinstance(entry, list) else entry
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        user = fields.get("username")
        user = user.decode() if isinstance(user, bytes) else user
        if user in users:
            found.append(f"{user}: {fields.get('reason')} {fields.get('object')}")
    return found


async def test_whole_flow_runs_as_the_documented_acl_users(redis_server, redis: ArqRedis, acl_users) -> None:
    as_api = make_settings(redis_server.url, redis_username="platform-api", redis_password=PASSWORDS["api"])
    as_worker = make_settings(redis_server.url, redis_username="platform-worker", redis_password=PASSWORDS["worker"])
    async with api_client(as_api) as client:
        accepted = await client.post("/v1/jobs", json=WELCOME)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        batch = await client.post("/v1/jobs/batch", json={"jobs": [WELCOME, {**WELCOME, "job_id": "acl-2"}]})
        assert batch.status_code == 202
        failing = await client.post("/v1/jobs", json={"function": "fail_always", "kwargs": {"message": "no"}})
        assert failing.status_code == 202

        worker = build_worker(as_worker, burst=True, poll_delay=0)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        assert worker.jobs_failed == 1  # fail_always, now a dead letter

        result = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 1})
        assert result.status_code == 200 and result.json()["status"] == "complete"
        deferred = await client.post("/v1/jobs", json={**WELCOME, "job_id": "acl-later", "defer_by": 60})
        assert deferred.status_code == 202
        assert (await client.post("/v1/jobs/acl-later/abort")).status_code == 200
        for path in ("/v1/queues", "/v1/workers", "/v1/cron", "/v1/dead", f"/v1/jobs/{job_id}", "/ready"):
            assert (await client.get(path)).status_code in (200, 503), path
        dead = (await client.get("/v1/dead")).json()
        assert dead["total"] == 1
        requeued = await client.post("/v1/dead/requeue", json={"function": "fail_always"})
        assert requeued.status_code == 200 and len(requeued.json()["requeued"]) == 1
    assert await denials(redis) == []


@pytest.mark.parametrize("role", ["api", "worker"])
async def test_acl_users_reach_nothing_else(redis_server, redis: ArqRedis, acl_users, role: str) -> None:
    client = Redis(host="127.0.0.1", port=redis_server.port, username=ROLES[role].name, password=PASSWORDS[role])
    try:
        assert await client.ping()
        for command in (
            ("FLUSHALL",),
            ("KEYS", "*"),
            ("CONFIG", "GET", "*"),
            ("SET", "other-app:key", "1"),
            ("GET", "session:42"),
            ("ACL", "LIST"),
            ("SCRIPT", "FLUSH"),
            ("DEBUG", "SLEEP", "0"),
            ("SHUTDOWN",),
        ):
            with pytest.raises((NoPermissionError, ResponseError)):
                await client.execute_command(*command)
    finally:
        await client.aclose()
