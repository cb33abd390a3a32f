"""A structlog event is one complete line, written straight to the platform's stream when no other handler
would see it, and handed to stdlib logging (every handler) when one would: the same fields either way."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
import structlog

from core.logging import configure_logging
from settings import Settings

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The platform's handler alone on the root logger (pytest's own capture taken off), writing here."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    root.handlers[:] = []
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(Settings(log_format="json", log_level="INFO"))
    try:
        yield out
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        structlog.contextvars.clear_contextvars()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_an_event_is_one_json_line_with_its_context_level_logger_and_timestamp(stream: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(job_id="j1", try_=2)
    log = structlog.get_logger("jobs")
    log.info("job.started", queued_ms=3, big=2**70)
    log.debug("job.hidden")
    (line,) = lines(stream)
    assert {k: line[k] for k in ("event", "queued_ms", "big", "job_id", "try_", "level", "logger")} == {
        "event": "job.started", "queued_ms": 3, "big": 2**70, "job_id": "j1", "try_": 2, "level": "info",
        "logger": "jobs",
    }  # fmt: skip
    assert TIMESTAMP.match(str(line["timestamp"]))


def test_an_exception_is_rendered_with_its_traceback(stream: io.StringIO) -> None:
    try:
        raise LookupError("gone")
    except LookupError:
        structlog.get_logger("worker").exception("worker.run_failed", job_id="j2")
    (line,) = lines(stream)
    assert line["event"] == "worker.run_failed" and line["level"] == "error"
    assert "LookupError: gone" in str(line["exception"])


def test_with_a_host_handler_every_handler_gets_the_event(stream: io.StringIO) -> None:
    host = Collecting()
    logging.getLogger().addHandler(host)
    structlog.get_logger("api").warning("api.something", n=1)
    (line,) = lines(stream)
    (record,) = host.records
    assert line["event"] == "api.something" and line["n"] == 1 and TIMESTAMP.match(str(line["timestamp"]))
    assert isinstance(record.msg, dict) and record.msg["event"] == "api.something"


def test_stdlib_lines_share_the_format(stream: io.StringIO) -> None:
    logging.getLogger("arq.worker").info("hello %s", "there")
    (line,) = lines(stream)
    assert line["event"] == "hello there" and line["logger"] == "arq.worker" and line["level"] == "info"
