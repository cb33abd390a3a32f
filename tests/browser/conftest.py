"""Browser tests: Debian's Chromium (/usr/bin/chromium, installed by `make install`; Playwright never downloads
a browser) driven by Playwright against the real API served by uvicorn, a real worker process and the suite's
Redis. Every page a test opens is watched for Content-Security-Policy violations."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from core.embedded_redis import RedisProcess
from tests.support.keys import api_keys_json
from tests.support.processes import ROOT, start_worker, stop_process
from tests.support.serving import served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000  # the longest any expectation waits; each returns as soon as it holds
expect.set_options(timeout=WAIT_MS)
# Set UPDATE_DOCS_SCREENSHOTS=1 to copy the screenshots the README shows into docs/.
DOCS = ROOT / "docs"
_COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
});
"""


class Watched:
    """A page and what it reported: console errors and CSP violations."""

    def __init__(self, page: Page, base_url: str, shots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.shots = shots
        self.console_errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def csp_violations(self) -> list[str]:
        found = list(self.page.evaluate("window.__cspViolations || []"))
        return found + [text for text in self.console_errors if "Content Security Policy" in text]

    def screenshot(self, name: str, *, docs: str | None = None) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if docs and os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
            shutil.copyfile(path, DOCS / docs)
        return path


def _wait_for_worker(base_url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(f"{base_url}/v1/workers", headers=headers, timeout=2).json():
            return
        time.sleep(0.05)
    raise AssertionError("no worker registered within 20 s")


@pytest.fixture(scope="module")
def worker(redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real worker process on the suite's Redis, emptied first."""
    redis.Redis.from_url(redis_server.url).flushall()
    process = start_worker(redis_server.url, tmp_path_factory.mktemp("worker") / "worker.log")
    yield
    stop_process(process)


@pytest.fixture(scope="module")
def open_api(redis_server: RedisProcess, worker: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API without API_KEYS: loopback clients (the browser) use the dashboard without signing in."""
    log = tmp_path_factory.mktemp("api") / "api.log"
    with served("service.main:app", redis_server.url, log) as (url, _):
        _wait_for_worker(url, {})
        yield url


@pytest.fixture(scope="module")
def keyed_api(redis_server: RedisProcess, worker: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API with the test keys (tests/support/keys.py): the dashboard asks to sign in."""
    log = tmp_path_factory.mktemp("api-keys") / "api.log"
    with served("service.main:app", redis_server.url, log, API_KEYS=api_keys_json()) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def watched_page(browser: Browser, base_url: str, shots: Path) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(_COLLECT_VIOLATIONS)
    try:
        yield Watched(context.new_page(), base_url, shots)
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, open_api: str, screenshots: Path) -> Iterator[Watched]:
    yield from watched_page(browser, open_api, screenshots)


@pytest.fixture
def keyed_page(browser: Browser, keyed_api: str, screenshots: Path) -> Iterator[Watched]:
    yield from watched_page(browser, keyed_api, screenshots)
