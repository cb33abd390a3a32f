"""The README's quick start for an existing app runs as written, and stays within 15 lines."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from core.status import JobState, read_job
from core.worker import PlatformWorker
from settings import Settings
from tests.test_embed import serve

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> str:
    section = README.read_text().split("## Use it from your FastAPI app", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_quick_start_is_at_most_15_lines() -> None:
    assert len(quick_start().strip().splitlines()) <= 15


async def test_quick_start_app_enqueues_after_the_response(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    redis: ArqRedis,
    run_burst_worker: Callable[..., Awaitable[PlatformWorker]],
) -> None:
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("JOB_MODULES", "jobs")
    source = tmp_path / "quick_start_app.py"
    source.write_text(quick_start())
    spec = importlib.util.spec_from_file_location("quick_start_app", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with serve(module.app) as client:
        response = await client.post("/signup", params={"email": "ada@example.com", "name": "Ada"})
    assert response.status_code == 200
    job_id = response.json()["welcome_email_job"]
    await run_burst_worker()
    record = await read_job(redis, settings.queue_name, job_id)
    assert record is not None and record.status == JobState.complete
    assert record.result["subject"] == "Welcome, Ada!"
