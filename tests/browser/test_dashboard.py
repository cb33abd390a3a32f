"""The dashboard in a real browser: enqueue from the generated form and watch the progress bar fill over SSE,
requeue a dead letter from its page, sign in with a key, and no page breaks its Content-Security-Policy."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import redis
from playwright.sync_api import expect

from core.embedded_redis import RedisProcess
from tests.browser.conftest import WAIT_MS, Watched
from tests.support.keys import ADMIN_KEY, bearer

PAGES = ["/dashboard", "/dashboard/jobs", "/dashboard/dead", "/dashboard/cron", "/dashboard/enqueue"]


def _wait_dead(base_url: str, job_id: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while httpx.get(f"{base_url}/v1/dead/{job_id}", headers=headers, timeout=2).status_code != 200:
        assert time.monotonic() < deadline, f"{job_id} did not reach the dead letters"
        time.sleep(0.05)


def test_enqueue_from_the_form_and_watch_progress_reach_100_without_a_reload(page: Watched) -> None:
    page.goto("/dashboard/enqueue")
    browser = page.page
    browser.select_option("#function", "generate_report")
    expect(browser.locator("#arg-rows")).to_be_visible()
    # The API's 422 lands on the field it names.
    browser.fill("#arg-report_id", "quarterly")
    browser.fill("#arg-rows", "0")
    browser.click("button[type=submit]")
    rows_error = browser.locator('.field[data-field="rows"] .field-error')
    expect(rows_error).to_be_visible()
    expect(rows_error).to_contain_text("greater than or equal to 1")
    expect(browser.locator("#arg-rows")).to_have_attribute("aria-invalid", "true")

    loads: list[str] = []
    browser.on("load", lambda _: loads.append(browser.url))
    browser.fill("#arg-rows", "1500")  # about 3 s of work, in ten steps
    browser.click("button[type=submit]")
    expect(rows_error).to_be_hidden()
    bar = browser.locator("#accepted-progress")
    expect(bar).to_have_attribute("data-percent", re.compile(r"^([1-9]\d?)$"))  # moving: between 1 and 99 %
    page.screenshot("enqueue-progress", docs="dashboard-enqueue.png")
    expect(bar).to_have_attribute("data-percent", "100")
    expect(browser.locator("#accepted-status")).to_have_text("complete")
    assert loads == [], f"the page reloaded: {loads}"
    job_id = browser.locator("#accepted-link").inner_text()

    # The job's own page: kwargs, the result, and a full bar.
    page.goto(f"/dashboard/jobs/{job_id}")
    expect(browser.locator("#job-status")).to_have_text("complete")
    expect(browser.locator("#job-kwargs")).to_contain_text('"report_id": "quarterly"')
    expect(browser.locator("#job-result")).to_contain_text('"rows": 1500')
    expect(browser.locator("#job-progress")).to_have_attribute("value", "100")
    assert page.csp_violations() == []


def test_a_failed_job_lands_in_the_dead_letters_and_is_requeued_from_the_page(
    page: Watched, redis_server: RedisProcess
) -> None:
    token = uuid.uuid4().hex
    accepted = httpx.post(
        f"{page.base_url}/v1/jobs", json={"function": "fail_until_allowed", "kwargs": {"token": token}}
    ).json()
    job_id = accepted["job_id"]
    _wait_dead(page.base_url, job_id)

    page.goto("/dashboard/dead")
    browser = page.page
    row = browser.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_contain_text("PermissionError")
    expect(row).to_contain_text("fail_until_allowed")
    page.screenshot("dead-letters")

    redis.Redis.from_url(redis_server.url).set(f"test:allowed:{token}", 1)
    row.locator("button.requeue").click()
    expect(browser.locator("#notice")).to_contain_text("Requeued 1")
    expect(row).to_have_count(0)

    page.goto(f"/dashboard/jobs/{job_id}")
    expect(browser.locator("#job-status")).to_have_text("complete")
    assert page.csp_violations() == []


def test_the_overview_shows_queues_workers_and_live_events(page: Watched) -> None:
    page.goto("/dashboard")
    browser = page.page
    expect(browser.locator("#live")).to_have_text("live")
    expect(browser.locator("#queues tbody tr[data-queue]")).to_have_count(1)
    expect(browser.locator("#workers tbody tr")).not_to_contain_text("No live worker")
    jobs = [{"function": "echo", "kwargs": {"value": n}} for n in range(12)]
    jobs += [{"function": "fail_always", "kwargs": {"message": f"for the chart {n}"}} for n in range(3)]
    assert httpx.post(f"{page.base_url}/v1/jobs/batch", json={"jobs": jobs}).status_code == 202
    # All 15 ended (a cron tick may add one): counted from the live feed, with no request of the page's own.
    expect(browser.locator("#throughput-chart")).to_have_attribute("data-total", re.compile(r"^(1[5-9]|[2-9]\d)$"))
    expect(browser.locator("#failure-chart circle.bad")).not_to_have_count(0)
    expect(browser.locator("#feed li").filter(has_text="fail_always")).not_to_have_count(0)
    # The worker's counters reach Redis with its next heartbeat: the page reads them again once events settle.
    expect(browser.locator('#workers td[data-cell="complete"]')).to_have_text(re.compile(r"^(1[2-9]|[2-9]\d)$"))
    page.screenshot("overview", docs="dashboard.png")
    assert page.csp_violations() == []


def test_sign_in_with_a_key_then_sign_out(keyed_page: Watched) -> None:
    browser = keyed_page.page
    keyed_page.goto("/dashboard/cron")
    expect(browser).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard%2Fcron$"))
    browser.fill("#key", "jp_not-a-key")
    browser.click("button[type=submit]")
    expect(browser.locator("#sign-in-error")).to_have_text("Unknown API key.")
    keyed_page.screenshot("sign-in")

    browser.fill("#key", ADMIN_KEY)
    browser.click("button[type=submit]")
    expect(browser).to_have_url(re.compile(r"/dashboard/cron$"))
    expect(browser.locator("#cron tbody tr[data-cron]")).not_to_have_count(0)
    expect(browser.locator(".who")).to_have_text("admin")
    cookie = next(c for c in browser.context.cookies() if c["name"] == "dashboard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "dashboard_session" not in browser.evaluate("document.cookie")
    assert ADMIN_KEY not in browser.content()

    # The page's own calls carry the session and its CSRF token: enqueue from the form works.
    keyed_page.goto("/dashboard/enqueue?function=echo")
    browser.fill("#arg-value", '{"signed": "in"}')
    browser.click("#enqueue button[type=submit]")
    expect(browser.locator("#accepted-status")).to_have_text("complete")

    browser.click(".sign-out button")
    expect(browser).to_have_url(re.compile(r"/dashboard/login$"))
    keyed_page.goto("/dashboard")
    expect(browser).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard$"))
    assert keyed_page.csp_violations() == []


def test_no_page_breaks_its_content_security_policy(keyed_page: Watched) -> None:
    browser = keyed_page.page
    keyed_page.goto("/dashboard/login")
    browser.fill("#key", ADMIN_KEY)
    browser.click("button[type=submit]")
    expect(browser).to_have_url(re.compile(r"/dashboard$"))
    job_id = httpx.post(
        f"{keyed_page.base_url}/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}}, headers=bearer(ADMIN_KEY)
    ).json()["job_id"]
    for path in [*PAGES, f"/dashboard/jobs/{job_id}"]:
        keyed_page.goto(path)
        expect(browser.locator("body")).to_have_attribute("data-ready", "true")
    # An inline script, as an injection would add, is refused and reported: the check can fail.
    inject = "const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; document.body.append(s)"
    browser.evaluate(f"() => {{ {inject} }}")
    assert browser.evaluate("window.__ran === undefined")
    violations = keyed_page.csp_violations()
    assert len(violations) >= 1 and all("script-src" in v for v in violations), violations
    assert [text for text in keyed_page.console_errors if "Content Security Policy" not in text] == []


def test_abort_a_running_job_from_its_page(page: Watched) -> None:
    job_id = httpx.post(f"{page.base_url}/v1/jobs", json={"function": "sleep_for", "kwargs": {"seconds": 30}}).json()[
        "job_id"
    ]
    page.goto(f"/dashboard/jobs/{job_id}")
    browser = page.page
    expect(browser.locator("#job-status")).to_have_text("in_progress")
    browser.once("dialog", lambda dialog: dialog.accept())
    browser.click("#abort")
    expect(browser.locator("#job-status")).to_have_text("aborted")
    expect(browser.locator("#job-error")).to_contain_text("aborted")
    expect(browser.locator("#abort")).to_be_hidden()
    assert page.csp_violations() == []


def test_jobs_filter_by_status_and_function_and_new_jobs_appear_live(page: Watched) -> None:
    page.goto("/dashboard/jobs?function=echo")
    browser = page.page
    expect(browser.locator("body")).to_have_attribute("data-ready", "true")
    job_id = f"browse-{uuid.uuid4().hex[:8]}"
    httpx.post(f"{page.base_url}/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}, "job_id": job_id})
    row = browser.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row).to_contain_text("complete")  # arrived and ended while the page stayed open
    expect(browser.locator("#jobs tbody tr").filter(has_text="fail_always")).to_have_count(0)
    browser.select_option("#filter-status", "dead")
    expect(row).to_have_count(0)
    expect(browser).to_have_url(re.compile(r"\?status=dead&function=echo$"))
    browser.locator("#counts button[data-status='complete']").click()
    expect(row).to_be_visible()
    browser.fill("#search-id", job_id)
    browser.click("#job-search button")
    expect(browser).to_have_url(re.compile(f"/dashboard/jobs/{job_id}$"))
    expect(browser.locator("#job-status")).to_have_text("complete")
    assert page.csp_violations() == []


def test_a_jobs_page_shows_its_priority(page: Watched) -> None:
    body = {"function": "echo", "kwargs": {"value": 1}, "priority": "low", "defer_by": 600}
    job_id = httpx.post(f"{page.base_url}/v1/jobs", json=body).json()["job_id"]
    page.goto(f"/dashboard/jobs/{job_id}")
    browser = page.page
    expect(browser.locator("#job-status")).to_have_text("deferred")
    expect(browser.locator("#job-priority")).to_have_text("low")
    expect(browser.locator("#job-waiting-on")).to_have_text("—")
    assert page.csp_violations() == []


def test_a_chained_job_shows_its_parent_and_children(page: Watched) -> None:
    body = {"function": "echo", "kwargs": {"value": 7}, "then": [{"function": "echo", "result_arg": "value"}]}
    accepted = httpx.post(f"{page.base_url}/v1/jobs", json=body).json()
    parent_id, child_id = accepted["job_id"], accepted["children"][0]["job_id"]
    browser = page.page
    page.goto(f"/dashboard/jobs/{parent_id}")
    expect(browser.locator("#chain-box")).to_be_visible()
    expect(browser.locator("#children tbody")).to_contain_text(child_id)
    page.goto(f"/dashboard/jobs/{child_id}")
    expect(browser.locator("#job-status")).to_have_text("complete")
    expect(browser.locator("#job-parent")).to_have_text(parent_id)
    expect(browser.locator("#job-result-arg")).to_have_text("value")
    expect(browser.locator("#job-result")).to_contain_text("7")
    assert page.csp_violations() == []
