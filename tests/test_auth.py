"""`service/auth.py`: API keys with scopes, 401 and 403, open health routes, the loopback-only default."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from arq.connections import ArqRedis
from asgi_lifespan import LifespanManager

from service.app import create_app
from service.auth import PUBLIC, KeyRing, Scope, flat_routes, required_scope
from service.mint_key import main as mint_main
from settings import ApiKeyEntry, Settings
from tests.conftest import make_settings
from tests.support.keys import ADMIN, ADMIN_KEY, ENQUEUE_KEY, ENQUEUER, READ_KEY, READER, bearer

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


@asynccontextmanager
async def client_for(settings: Settings, client_ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            yield client


@pytest.fixture
async def keyed(redis_server, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(redis_server.url, api_keys=[ADMIN, ENQUEUER, READER])
    async with client_for(settings) as client:
        yield client


async def test_missing_key_is_401_with_www_authenticate(keyed: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/v1/jobs/x"), ("POST", "/v1/jobs"), ("GET", "/openapi.json"), ("GET", "/nope")]:
        response = await keyed.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"][0]["type"] == "unauthorized"


async def test_wrong_key_is_401(keyed: httpx.AsyncClient) -> None:
    for headers in (bearer("jp_not-a-key"), {"X-API-Key": "jp_not-a-key"}, {"Authorization": f"Basic {ADMIN_KEY}"}):
        response = await keyed.get("/v1/queues", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_key_is_accepted_as_bearer_or_x_api_key(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/v1/queues", headers=bearer(READ_KEY))).status_code == 200
    assert (await keyed.get("/v1/queues", headers={"X-API-Key": READ_KEY})).status_code == 200
    assert (await keyed.get("/v1/queues", headers={"authorization": f"bearer {READ_KEY}"})).status_code == 200


async def test_right_key_wrong_scope_is_403(keyed: httpx.AsyncClient) -> None:
    reader, producer = bearer(READ_KEY), bearer(ENQUEUE_KEY)
    assert (await keyed.post("/v1/jobs", json=WELCOME, headers=reader)).status_code == 403
    assert (await keyed.post("/v1/jobs/batch", json={"jobs": [WELCOME]}, headers=reader)).status_code == 403
    assert (await keyed.get("/v1/queues", headers=producer)).status_code == 403
    assert (await keyed.post("/v1/jobs/some-job/abort", headers=producer)).status_code == 403
    assert (await keyed.post("/v1/jobs/some-job/abort", headers=reader)).status_code == 403
    typed = "/v1/functions/send_welcome_email/jobs"
    assert (await keyed.post(typed, json=WELCOME["kwargs"], headers=reader)).status_code == 403
    assert (await keyed.post("/v1/dead/requeue", json={"function": "x"}, headers=reader)).status_code == 403
    assert (await keyed.delete("/v1/dead", params={"all": "true"}, headers=producer)).status_code == 403
    assert (await keyed.delete("/v1/dead/some-job", headers=reader)).status_code == 403


async def test_a_wrong_scope_is_named_by_its_word(keyed: httpx.AsyncClient) -> None:
    """The 403 says which scope is missing as a client writes it (`'admin'`), not as Python's enum repr."""
    refused = await keyed.post("/v1/jobs/some-job/abort", headers=bearer(READ_KEY))
    assert refused.json()["detail"] == [{"loc": [], "msg": "this key lacks the 'admin' scope", "type": "forbidden"}]
    refused = await keyed.get("/v1/events", headers=bearer(ENQUEUE_KEY))
    assert refused.json()["detail"][0]["msg"] == "this key lacks the 'read' scope"


async def test_each_scope_reaches_its_routes(keyed: httpx.AsyncClient) -> None:
    accepted = await keyed.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    batch = await keyed.post("/v1/jobs/batch", json={"jobs": [WELCOME]}, headers=bearer(ENQUEUE_KEY))
    assert batch.status_code == 202
    typed = "/v1/functions/send_welcome_email/jobs"
    assert (await keyed.post(typed, json=WELCOME["kwargs"], headers=bearer(ENQUEUE_KEY))).status_code == 202
    for path in (f"/v1/jobs/{job_id}", "/v1/functions", "/v1/dead", "/v1/workers", "/openapi.json", "/docs"):
        assert (await keyed.get(path, headers=bearer(READ_KEY))).status_code == 200, path
    assert (await keyed.get(f"/v1/jobs/{job_id}/result", headers=bearer(READ_KEY))).status_code == 202
    admin = bearer(ADMIN_KEY)
    assert (await keyed.post(f"/v1/jobs/{job_id}/abort", headers=admin)).status_code == 200
    assert (await keyed.delete("/v1/dead", params={"all": "true"}, headers=admin)).status_code == 200
    assert (await keyed.post("/v1/dead/requeue", json={"job_ids": ["x"]}, headers=admin)).status_code == 200


async def test_health_and_ready_stay_open(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/health")).status_code == 200
    assert (await keyed.get("/ready")).status_code in (200, 503)  # 503: no worker is running, not a 401


async def test_unknown_path_asks_for_a_key_before_saying_404(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/v2/secrets")).status_code == 401
    assert (await keyed.get("/v2/secrets", headers=bearer(READ_KEY))).status_code == 404


def test_every_route_is_guarded_unless_declared_public(settings: Settings) -> None:
    app = create_app(settings)
    scopes = {
        (method, route.path_format): required_scope(route, method)
        for route in flat_routes(app.routes)
        for method in (route.methods or ())
    }
    # Health, and what a browser needs before it has a session: the sign-in form and the dashboard's own files.
    assert {key for key, scope in scopes.items() if scope == PUBLIC} == {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/dashboard/login"),
        ("POST", "/dashboard/login"),
        ("POST", "/dashboard/logout"),
        ("GET", "/dashboard/static/{name}"),
    }
    assert scopes[("POST", "/v1/jobs")] == scopes[("POST", "/v1/jobs/batch")] == Scope.enqueue
    assert scopes[("POST", "/v1/jobs/{job_id}/abort")] == scopes[("POST", "/v1/dead/requeue")] == Scope.admin
    assert scopes[("POST", "/v1/functions/{name}/jobs")] == Scope.enqueue
    typed_enqueues = [scope for (method, path), scope in scopes.items() if method == "POST" and "functions/" in path]
    assert set(typed_enqueues) == {Scope.enqueue}, "the published scope of every typed enqueue is `enqueue`"
    assert scopes[("DELETE", "/v1/dead")] == scopes[("DELETE", "/v1/dead/{job_id}")] == Scope.admin
    assert all(scope == Scope.read for (method, _), scope in scopes.items() if method == "GET" and scope != PUBLIC)


async def test_without_keys_only_loopback_clients_are_served(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url)
    async with client_for(settings, client_ip="127.0.0.1") as local:
        assert (await local.get("/v1/queues")).status_code == 200
    async with client_for(settings, client_ip="::1") as local6:
        assert (await local6.get("/v1/queues")).status_code == 200
    async with client_for(settings, client_ip="203.0.113.7") as remote:
        refused = await remote.post("/v1/jobs", json=WELCOME)
        assert refused.status_code == 403
        assert refused.json()["detail"][0]["type"] == "loopback_only"
        assert (await remote.get("/health")).status_code == 200
    assert await redis.zcard("arq:queue") == 0


async def test_allow_anonymous_serves_every_client(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, allow_anonymous=True)
    async with client_for(settings, client_ip="203.0.113.7") as remote:
        assert (await remote.post("/v1/jobs", json=WELCOME)).status_code == 202


async def test_keys_set_means_loopback_needs_a_key_too(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, api_keys=[READER], allow_anonymous=True)
    async with client_for(settings, client_ip="127.0.0.1") as local:
        assert (await local.get("/v1/queues")).status_code == 401


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [({}, "loopback-only"), ({"allow_anonymous": True}, "anonymous"), ({"api_keys": [READER]}, "keys")],
)
async def test_start_up_says_which_mode(redis_server, capsys, overrides, mode) -> None:
    settings = make_settings(redis_server.url, log_level="INFO", log_format="json", **overrides)
    async with client_for(settings):
        pass
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [line["mode"] for line in lines if line["event"] == "api.auth"] == [mode]


async def test_keys_are_never_logged(redis_server, redis: ArqRedis, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(redis_server.url, api_keys=[ADMIN], log_level="DEBUG")
    async with client_for(settings) as client:
        await client.get("/v1/queues", headers=bearer(ADMIN_KEY))
        await client.get("/v1/queues", headers=bearer(ADMIN_KEY + "x"))
        await client.post("/v1/jobs", json=WELCOME, headers={"X-API-Key": ADMIN_KEY})
    captured = capsys.readouterr()
    logged = captured.out + captured.err + "\n".join(str(r.msg) for r in caplog.records)
    assert ADMIN_KEY not in logged


async def test_minted_key_authenticates(redis_server, redis: ArqRedis, capsys) -> None:
    mint_main(["--name", "billing", "--scopes", "enqueue,read"])
    lines = capsys.readouterr().out.splitlines()
    key = lines[1].strip()
    entry = json.loads(lines[3])
    assert entry["name"] == "billing" and entry["scopes"] == ["enqueue", "read"] and key not in lines[3]
    settings = make_settings(redis_server.url, api_keys=[entry])
    async with client_for(settings) as client:
        assert (await client.post("/v1/jobs", json=WELCOME, headers=bearer(key))).status_code == 202
        assert (await client.delete("/v1/dead", params={"all": "true"}, headers=bearer(key))).status_code == 403


def test_api_keys_setting_is_read_from_the_environment(monkeypatch) -> None:
    from settings import load_settings

    monkeypatch.setenv("API_KEYS", json.dumps([ENQUEUER.model_dump(mode="json")]))
    assert load_settings().api_keys == [ENQUEUER]
    monkeypatch.setenv("API_KEYS", '[{"name": "x", "sha256": "short", "scopes": ["read"]}]')
    with pytest.raises(SystemExit, match="API_KEYS"):
        load_settings()


def test_key_ring_remembers_only_keys_that_matched() -> None:
    """Matched keys skip the hash next time (service/auth.py's KeyRing); wrong keys are never remembered, and
    a remembered key still has to equal what is presented."""
    ring = KeyRing([ADMIN, READER])
    assert ring.find("jp_not-a-key") is None and ring.find(b"jp_not-a-key") is None
    assert ring._verified == {}
    for _ in range(2):  # hashed the first time, remembered the second
        found = ring.find(READ_KEY.encode())
        assert found is not None and found.name == READER.name
    assert list(ring._verified) == [READ_KEY.encode()]
    assert ring.find(READ_KEY[:-1].encode()) is None  # a prefix of a remembered key is a wrong key
    assert ring.find(READ_KEY + "x") is None
    assert ring.find(ADMIN_KEY).name == ADMIN.name  # type: ignore[union-attr]
    assert len(ring._verified) == 2


async def test_a_key_in_utf8_is_taken_as_sent(redis_server, redis: ArqRedis) -> None:
    """The header's bytes are hashed as sent, so a key configured as the SHA-256 of its UTF-8 works."""
    key = "clé-secrète-✓"
    entry = ApiKeyEntry(name="utf8", sha256=hashlib.sha256(key.encode()).hexdigest(), scopes=[Scope.read])
    async with client_for(make_settings(redis_server.url, api_keys=[entry])) as client:
        assert (await client.get("/v1/queues", headers=[(b"X-API-Key", key.encode())])).status_code == 200
        assert (await client.get("/v1/queues", headers=[(b"X-API-Key", b"cl\xe9")])).status_code == 401


async def test_a_request_presenting_different_keys_is_401(keyed: httpx.AsyncClient) -> None:
    """Which of two keys counts would depend on header order, and a proxy or a log may see the other one."""
    both = [
        [(b"authorization", f"Bearer {READ_KEY}".encode()), (b"x-api-key", b"jp_wrong")],
        [(b"x-api-key", b"jp_wrong"), (b"x-api-key", READ_KEY.encode())],
        [(b"x-api-key", READ_KEY.encode()), (b"x-api-key", b"jp_wrong")],
        [(b"authorization", f"Bearer {READ_KEY}".encode()), (b"authorization", f"Bearer {ADMIN_KEY}".encode())],
    ]
    for headers in both:
        response = await keyed.get("/v1/queues", headers=headers)
        assert response.status_code == 401, headers
        assert "different API keys" in response.json()["detail"][0]["msg"]
    same = [(b"authorization", f"Bearer {READ_KEY}".encode()), (b"x-api-key", READ_KEY.encode())]
    assert (await keyed.get("/v1/queues", headers=same)).status_code == 200
    other_scheme = [(b"authorization", b"Basic dXNlcjpwYXNz"), (b"x-api-key", READ_KEY.encode())]
    assert (await keyed.get("/v1/queues", headers=other_scheme)).status_code == 200
