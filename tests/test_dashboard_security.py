"""The dashboard's security (service/dashboard/, service/auth.py): sign-in with a key into a Redis-kept session
whose cookie the page cannot read, CSRF tokens on forms and on cookie-authenticated calls, strict page headers,
the same scopes and limits as the API, and the loopback-only default without keys."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from arq.connections import ArqRedis
from asgi_lifespan import LifespanManager

from core import keys
from service.app import create_app
from service.dashboard.sessions import COOKIE
from settings import Settings
from tests.conftest import make_settings
from tests.support.keys import ADMIN, ADMIN_KEY, ENQUEUE_KEY, ENQUEUER, READ_KEY, READER, bearer

PAGES = ["/dashboard", "/dashboard/jobs", "/dashboard/jobs/some-id", "/dashboard/dead", "/dashboard/cron",
         "/dashboard/enqueue"]  # fmt: skip
WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@asynccontextmanager
async def browser_for(settings: Settings, client_ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, as a browser does."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
            yield client


@pytest.fixture
def keyed_settings(redis_server) -> Settings:
    return make_settings(redis_server.url, api_keys=[ADMIN, ENQUEUER, READER])


@pytest.fixture
async def browser(keyed_settings: Settings, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_for(keyed_settings) as client:
        yield client


def form_token(html: str, name: str = "csrf_token") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def page_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str, next_: str = "/dashboard") -> httpx.Response:
    form = await client.get("/dashboard/login", params={"next": next_})
    assert form.status_code == 200
    body = {"key": key, "csrf_token": form_token(form.text), "next": next_}
    return await client.post("/dashboard/login", data=body)


async def signed_in(client: httpx.AsyncClient, key: str = ADMIN_KEY) -> str:
    """Sign in; returns the CSRF token the dashboard's pages carry."""
    answer = await sign_in(client, key)
    assert answer.status_code == 303, answer.text
    page = await client.get("/dashboard")
    assert page.status_code == 200
    return page_csrf(page.text)


async def test_pages_send_strict_security_headers(browser: httpx.AsyncClient) -> None:
    await signed_in(browser)
    for path in [*PAGES, "/dashboard/login", "/dashboard/static/dashboard.js", "/dashboard/static/dashboard.css"]:
        answer = await browser.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] in ("same-origin", "no-referrer")
        assert answer.headers["x-frame-options"] == "DENY"


async def test_pages_hold_no_inline_script_or_style(browser: httpx.AsyncClient) -> None:
    await signed_in(browser)
    for path in [*PAGES, "/dashboard/login"]:
        html = (await browser.get(path)).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # every script is a file
        assert "<style" not in html and " style=" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers
        assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html, path  # no CDN


async def test_static_files_are_the_package_s_own_and_nothing_else(browser: httpx.AsyncClient) -> None:
    script = await browser.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    again = await browser.get("/dashboard/static/dashboard.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    assert (await browser.get("/dashboard/static/missing.js")).status_code == 404
    for name in ("../routes.py", "..%2Froutes.py", "%2e%2e%2fpages.py", "..%5Croutes.py", "__init__.py"):
        answer = await browser.get(f"/dashboard/static/{name}")  # no route (401 without a key) or no such file
        assert answer.status_code in (401, 404) and "import" not in answer.text, name


async def test_a_page_without_credentials_redirects_to_sign_in(browser: httpx.AsyncClient) -> None:
    answer = await browser.get("/dashboard/dead", params={"function": "x"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fdead%3Ffunction%3Dx"
    assert (await browser.get("/v1/queues")).status_code == 401  # the API itself still answers 401


async def test_sign_in_keeps_a_server_side_session_in_an_httponly_strict_cookie(
    browser: httpx.AsyncClient, redis: ArqRedis
) -> None:
    answer = await sign_in(browser, ADMIN_KEY, next_="/dashboard/cron")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/cron"
    cookie = next(value for name, value in answer.headers.multi_items() if name == "set-cookie" and COOKIE in value)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    token = browser.cookies[COOKIE]
    assert ADMIN_KEY not in cookie and ADMIN_KEY not in token
    stored = [key async for key in redis.scan_iter(match=keys.dashboard_session("*"))]
    assert len(stored) == 1 and token.encode() not in stored[0]  # only the token's digest names it
    record = await redis.get(stored[0])
    assert ADMIN_KEY.encode() not in record and json.loads(record)["key_sha256"] == ADMIN.sha256
    page = await browser.get("/dashboard/cron")
    assert page.status_code == 200 and ADMIN_KEY not in page.text and token not in page.text
    assert "admin" in page.text  # the signed-in key's name is shown


async def test_sign_in_refuses_wrong_keys_keys_without_read_and_forged_forms(browser: httpx.AsyncClient) -> None:
    wrong = await sign_in(browser, "jp_not-a-key")
    assert wrong.status_code == 401 and "Unknown API key" in wrong.text
    no_read = await sign_in(browser, ENQUEUE_KEY)
    assert no_read.status_code == 403 and "read" in no_read.text
    await browser.get("/dashboard/login")
    forged = await browser.post("/dashboard/login", data={"key": ADMIN_KEY, "csrf_token": "forged"})
    assert forged.status_code == 403
    browser.cookies.clear()
    no_cookie = await browser.post("/dashboard/login", data={"key": ADMIN_KEY, "csrf_token": "x"})
    assert no_cookie.status_code == 403
    assert COOKIE not in browser.cookies


async def test_sign_in_goes_back_only_to_dashboard_paths(browser: httpx.AsyncClient) -> None:
    for target in ("https://evil.example/", "//evil.example/dashboard", "/v1/queues", "/dashboard\\@evil"):
        browser.cookies.clear()
        answer = await sign_in(browser, READ_KEY, next_=target)
        assert answer.headers["location"] == "/dashboard", target


async def test_the_session_reaches_the_api_with_its_key_s_scopes(browser: httpx.AsyncClient) -> None:
    csrf = await signed_in(browser, READ_KEY)
    assert (await browser.get("/v1/queues")).status_code == 200
    assert (await browser.get("/v1/functions")).status_code == 200
    refused = await browser.post("/v1/jobs", json=WELCOME, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and refused.json()["detail"][0]["type"] == "forbidden"


async def test_a_cookie_only_state_changing_request_needs_the_csrf_token(browser: httpx.AsyncClient) -> None:
    csrf = await signed_in(browser)
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        refused = await browser.post("/v1/jobs", json=WELCOME, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["detail"][0]["type"] == "csrf_failed"
        assert (await browser.delete("/v1/dead", params={"all": "true"}, headers=headers)).status_code == 403
    accepted = await browser.post("/v1/jobs", json=WELCOME, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 202
    deleted = await browser.delete("/v1/dead", params={"all": "true"}, headers={"X-CSRF-Token": csrf})
    assert deleted.status_code == 200
    # A key in a header needs no CSRF token: another site cannot make a browser send one.
    assert (await browser.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))).status_code == 202


async def test_sign_out_needs_its_form_token_and_ends_the_session_everywhere(
    browser: httpx.AsyncClient, keyed_settings: Settings
) -> None:
    csrf = await signed_in(browser)
    token = browser.cookies[COOKIE]
    assert (await browser.post("/dashboard/logout", data={"csrf_token": "forged"})).status_code == 403
    assert (await browser.get("/v1/queues")).status_code == 200
    out = await browser.post("/dashboard/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    async with browser_for(keyed_settings) as other_replica:  # the same cookie, on another API process
        other_replica.cookies.set(COOKIE, token)
        assert (await other_replica.get("/v1/queues")).status_code == 401
        assert (await other_replica.get("/dashboard")).status_code == 303


async def test_a_session_ends_when_its_key_is_removed(browser: httpx.AsyncClient, redis_server) -> None:
    await signed_in(browser, READ_KEY)
    token = browser.cookies[COOKIE]
    rotated = make_settings(redis_server.url, api_keys=[ADMIN, ENQUEUER])
    async with browser_for(rotated) as client:
        client.cookies.set(COOKIE, token)
        assert (await client.get("/v1/queues")).status_code == 401


async def test_a_session_counts_against_its_key_s_rate_limit(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, api_keys=[ADMIN, ENQUEUER, READER], rate_limit_per_minute=4)
    async with browser_for(settings) as client:
        await sign_in(client, READ_KEY)  # public routes: not counted
        statuses = [(await client.get("/v1/queues")).status_code for _ in range(3)]
        statuses.append((await client.get("/v1/queues", headers=bearer(READ_KEY))).status_code)
        limited = await client.get("/v1/queues")
    assert statuses == [200, 200, 200, 200]
    assert limited.status_code == 429 and "retry-after" in limited.headers


async def test_forms_are_taken_only_by_the_sign_in_and_sign_out_routes(browser: httpx.AsyncClient) -> None:
    await signed_in(browser)
    answer = await browser.post("/v1/jobs", content=b"function=x", headers={**FORM, **bearer(ADMIN_KEY)})
    assert answer.status_code == 415
    too_big = await browser.post("/dashboard/login", content=b"key=" + b"x" * (2 << 20), headers=FORM)
    assert too_big.status_code == 413


async def test_without_keys_loopback_browsers_need_no_sign_in(settings: Settings, redis: ArqRedis) -> None:
    async with browser_for(settings) as local:
        for path in PAGES:
            page = await local.get(path)
            assert page.status_code == 200, path
            assert "Sign out" not in page.text
        assert (await local.get("/dashboard/login")).status_code == 303
        assert (await local.post("/v1/jobs", json=WELCOME)).status_code == 202
    async with browser_for(settings, client_ip="203.0.113.9") as remote:
        assert (await remote.get("/dashboard")).status_code == 403
        assert (await remote.get("/dashboard/static/dashboard.js")).status_code == 200  # files are public


async def test_the_session_opens_event_streams(browser: httpx.AsyncClient, run_burst_worker) -> None:
    """EventSource cannot send headers: the cookie alone opens a stream, with the session's key."""
    csrf = await signed_in(browser)
    job_id = (await browser.post("/v1/jobs", json=WELCOME, headers={"X-CSRF-Token": csrf})).json()["job_id"]
    await run_burst_worker()
    stream = await browser.get(f"/v1/jobs/{job_id}/events")  # ended: the job's terminal event was replayed
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert "event: complete" in stream.text
    browser.cookies.clear()
    assert (await browser.get(f"/v1/jobs/{job_id}/events")).status_code == 401
    assert (await browser.get("/v1/events")).status_code == 401


async def test_an_app_that_includes_the_platform_router_serves_the_dashboard(settings: Settings, redis) -> None:
    """Without the guard (a user's app that only includes `platform.router`), the pages serve this host only."""
    from tests.support.embed_app import build

    app = build(settings)
    async with LifespanManager(app) as manager:
        for client_ip, expected in (("127.0.0.1", 200), ("203.0.113.9", 403)):
            transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
                page = await client.get("/dashboard/enqueue")
                assert page.status_code == expected, client_ip
                if expected == 200:
                    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
