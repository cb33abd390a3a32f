"""CPU cost of the pieces of a job's path (µs per call): validation, codec, logging, the job wrapper.

Run by `bench.run` as its own process (`python -m bench.micro` prints JSON), since it configures logging
the way the worker does. Each piece is measured next to what raw arq does in its place, where it has one;
a piece that cannot be measured (the platform's internals change) is left out with a note, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import logging.config
import pickle
import sys
import timeit
from collections.abc import Callable, Iterator
from typing import Any

from arq.jobs import deserialize_job_raw, serialize_job, serialize_result

Micro = tuple[str, float, float | None]  # label, platform µs, raw arq µs (None: raw arq does nothing here)


def per_call_us(call: Callable[[], object], number: int = 2000) -> float:
    """Best of 5 repeats, in µs per call."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


@contextlib.contextmanager
def _platform_logging(settings: Any) -> Iterator[io.StringIO]:
    """The platform's logging set-up, writing into a buffer instead of stderr."""
    from core.logging import configure_logging

    saved_stderr = sys.stderr
    buffer = io.StringIO()
    sys.stderr = buffer
    try:
        configure_logging(settings)
        yield buffer
    finally:
        sys.stderr = saved_stderr


def _codec_pieces() -> list[Micro]:
    from core import codec

    job = serialize_job("noop", (), {}, None, 1_700_000_000_000, serializer=codec.dumps)
    raw_job = serialize_job("noop", (), {}, None, 1_700_000_000_000, serializer=None)

    def result(serializer: Callable[[dict[str, Any]], bytes] | None) -> bytes | None:
        return serialize_result(
            "noop", (), {}, 1, 1, True, None, 1, 2, "id:noop", "arq:queue", job_id="id", serializer=serializer
        )

    return [
        (
            "job payload encode (orjson vs pickle)",
            per_call_us(lambda: serialize_job("noop", (), {}, None, 1, serializer=codec.dumps)),
            per_call_us(lambda: serialize_job("noop", (), {}, None, 1, serializer=None)),
        ),
        (
            "job payload decode",
            per_call_us(lambda: deserialize_job_raw(job, deserializer=codec.loads)),
            per_call_us(lambda: deserialize_job_raw(raw_job, deserializer=pickle.loads)),
        ),
        ("result encode", per_call_us(lambda: result(codec.dumps)), per_call_us(lambda: result(None))),
    ]


def _validation_pieces() -> list[Micro]:
    from core.registry import load_job_modules
    from service.models import EnqueueRequest

    spec = load_job_modules(["bench.noop_jobs"]).get("noop")
    body = b'{"function": "noop", "kwargs": {}}'
    return [
        ("enqueue-side validation of kwargs (spec.json_kwargs)", per_call_us(lambda: spec.json_kwargs({})), None),
        (
            "HTTP body parse (EnqueueRequest.model_validate_json)",
            per_call_us(lambda: EnqueueRequest.model_validate_json(body)),
            None,
        ),
    ]


def _logging_and_wrapper_pieces() -> list[Micro]:
    import structlog

    from core.registry import load_job_modules
    from core.worker_config import worker_kwargs
    from settings import load_settings

    settings = load_settings(log_level="WARNING", log_format="json", job_modules=["jobs", "bench.noop_jobs"])
    pieces: list[Micro] = []
    with _platform_logging(settings):
        platform_log = structlog.get_logger("jobs")
        arq_log = logging.getLogger("arq.worker")
        pieces.append(
            (
                "a structlog info() call at LOG_LEVEL=WARNING",
                per_call_us(lambda: platform_log.info("job.started", function="noop")),
                None,
            )
        )
        pieces.append(
            (
                "an arq stdlib INFO line at LOG_LEVEL=WARNING (arq logs 2 per job)",
                per_call_us(lambda: arq_log.info("%6.2fs → %s()%s", 0.01, "0123456789abcdef:noop", "")),
                None,
            )
        )
        functions = {f.name: f for f in worker_kwargs(settings, load_job_modules(settings.job_modules))["functions"]}
        wrapper = functions["noop"].coroutine
        ctx: dict[str, Any] = {"job_id": "0123456789abcdef", "job_try": 1, "redis": None, "queue_name": "arq:queue"}

        async def raw_noop(ctx: dict[str, Any]) -> None:
            return None

        async def per_job_us(call: Callable[[], Any], jobs: int = 5000) -> float:
            best = float("inf")
            for _ in range(5):
                started = asyncio.get_running_loop().time()
                for _ in range(jobs):
                    await call()
                best = min(best, (asyncio.get_running_loop().time() - started) / jobs * 1e6)
            return best

        async def both() -> tuple[float, float]:
            return await per_job_us(lambda: wrapper(ctx)), await per_job_us(lambda: raw_noop(ctx))

        ours, theirs = asyncio.run(both())
        pieces.append(("job wrapper around noop (validate, timeout, 2 log calls)", ours, theirs))
    return pieces


def measure_all() -> tuple[list[Micro], list[str]]:
    pieces: list[Micro] = []
    notes: list[str] = []
    groups: list[Callable[[], list[Micro]]] = [
        _validation_pieces,
        _codec_pieces,
        _logging_and_wrapper_pieces,
    ]
    for group in groups:
        try:
            pieces += group()
        except Exception as exc:  # the platform is changing under the benchmark: report, do not fail
            notes.append(f"a micro-benchmark was skipped: {type(exc).__name__}: {exc}")
    return pieces, notes


def rows(pieces: list[Micro]) -> list[list[str]]:
    table = [["CPU cost of one call (µs, one process)", "platform", "raw arq"]]
    for label, ours, theirs in pieces:
        table.append([label, f"{ours:.1f}", "—" if theirs is None else f"{theirs:.1f}"])
    return table


def main() -> None:
    pieces, notes = measure_all()
    json.dump({"pieces": pieces, "notes": notes}, sys.stdout)


if __name__ == "__main__":
    main()
