"""The route handle's `enqueue` is checked by mypy against the job's signature: a wrong or missing argument
is a type error before anything runs."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = """
from service import JobsDep
from jobs.emails import send_welcome_email
from jobs.reports import generate_report


async def route(jobs: JobsDep) -> None:
    ok: str = await jobs.enqueue(send_welcome_email, email="a@example.com", name="Ada")
    await jobs.after_response.enqueue(generate_report, report_id="q3", rows=10)
    await jobs.options("on_success", job_id="x").enqueue(send_welcome_email, "a@example.com", "Ada")
    await jobs.enqueue(send_welcome_email, email="a@example.com")  # line 11: missing name
    await jobs.after_response.enqueue(generate_report, report_id="q3", rows="ten")  # line 12: wrong type
    await jobs.on_success.enqueue(send_welcome_email, emial="a@example.com", name="Ada")  # line 13: unknown
    wrong: int = await jobs.enqueue(send_welcome_email, email="a@example.com", name="Ada")  # line 14: returns str
"""


def test_mypy_checks_enqueue_against_the_jobs_signature(tmp_path: Path) -> None:
    source = tmp_path / "user_routes.py"
    source.write_text(SNIPPET)
    stdout, _, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"), str(source)]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert status == 1
    assert lines == [11, 12, 13, 14], stdout
    assert 'argument "name"' in stdout
    assert 'Unexpected keyword argument "emial"' in stdout
