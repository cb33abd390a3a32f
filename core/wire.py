"""arq's wire format, owned in one place: the job payload (written at enqueue, read by the worker) and the
result payload (written by the worker, read by the API). The platform writes both as JSON (core.codec); a
worker built with arq's own serializer arguments (arq's default is pickle) reads and writes with those, so a
plain arq deployment keeps working, but nothing the platform writes is ever pickled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result

from core import codec
from core.codec import JobError
from core.correlation import Correlation
from core.exact_json import dumps_exact

Serializer = Callable[[dict[str, Any]], bytes]
Deserializer = Callable[[bytes], dict[str, Any]]


class EncodedJSON(bytes):
    """A result already encoded exactly as JSON (spliced into the result payload, not encoded twice)."""


class UnreadableJob(ValueError):
    """A stored job payload that is not a job (not JSON, or not arq's shape)."""


@dataclass(frozen=True)
class JobPayload:
    """What a job key holds: arq's `{"t", "f", "a", "k", "et"}`, and the platform's `"rid"` (the enqueueing
    request's id) and `"tp"` (its W3C traceparent) when it had them: keys arq does not read, so arq still reads
    the payload as its own."""

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    job_try: int | None
    enqueue_time_ms: int
    correlation: Correlation | None = None
    chain: list[Any] | None = None  # the children to enqueue when it succeeds (core/chains.py)
    parent: str | None = None  # the job it was chained after
    unique: str | None = None  # its uniqueness lock (core/unique.py)

    @property
    def chained(self) -> bool:
        """Part of a chain: its end touches its links (core/chains.py)."""
        return self.chain is not None or self.parent is not None


def encode_job(
    function: str,
    kwargs: dict[str, Any],
    enqueue_time_ms: int,
    correlation: Correlation | None = None,
    extra: bytes = b"",
) -> bytes:
    """A new job's payload, JSON. Raises Unencodable (naming the field) for kwargs JSON cannot carry exactly
    (NaN, infinities, integers beyond 64 bits, lone surrogates): what is accepted reaches the job unchanged.
    `extra`: the platform's own fields of a chained or unique job, already encoded (`,"c":...`)."""
    head = codec.dumps({"t": None, "f": function, "a": []})
    tail = extra + b"}"
    fields = {"rid": correlation.request_id, "tp": correlation.traceparent} if correlation is not None else {}
    given = {k: v for k, v in fields.items() if v is not None}
    if given:
        tail = b"," + codec.dumps(given)[1:-1] + tail
    return head[:-1] + b',"k":' + dumps_exact(kwargs) + b',"et":' + str(int(enqueue_time_ms)).encode() + tail


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def decode_job(raw: bytes, deserializer: Deserializer | None) -> JobPayload:
    if deserializer is None:  # arq's default (pickle): arq reads it, and nothing of ours is in it
        try:
            function, args, kwargs, job_try, enqueue_time_ms = deserialize_job_raw(raw, deserializer=None)
        except SerializationError as exc:
            raise UnreadableJob(str(exc)) from None
        correlation, data = None, {}
    else:  # arq's own reading (`deserialize_job_raw`), keeping the rest of the dict
        try:
            data = deserializer(raw)
            function, args, kwargs, job_try, enqueue_time_ms = data["f"], data["a"], data["k"], data["t"], data["et"]
        except Exception:
            raise UnreadableJob("unable to deserialize job") from None
        correlation = None
        if "rid" in data or "tp" in data:
            rid, tp = _text_or_none(data.get("rid")), _text_or_none(data.get("tp"))
            correlation = Correlation(rid, tp) if rid or tp else None
    if not isinstance(function, str) or not isinstance(kwargs, dict):
        raise UnreadableJob("the payload is not a job")
    chain = data.get("c")  # chains and unique jobs (core/chains.py, core/unique.py)
    return JobPayload(
        function,
        tuple(args or ()),
        kwargs,
        job_try,
        int(enqueue_time_ms or 0),
        correlation,
        chain if isinstance(chain, list) else None,
        _text_or_none(data.get("p")),
        _text_or_none(data.get("u")),
    )


def lease_started_ms(token: str | bytes | None) -> int | None:
    """When a running job was claimed: the claim's lease token is `<worker id>:<unix ms>:<call>:<n>` (claim.lua),
    so a job's start time is known while it runs without a write of its own."""
    if token is None:
        return None
    text = token.decode(errors="replace") if isinstance(token, bytes) else token
    parts = text.rsplit(":", 3)
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None


@dataclass(frozen=True)
class ResultHeader:
    """Everything of a result payload but the outcome itself."""

    job_id: str
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    job_try: int
    enqueue_time_ms: int
    start_ms: int | None  # None: it never started (aborted before a worker took it)
    finished_ms: int
    queue: str
    scheduled_ms: int | None = None


def encode_result(header: ResultHeader, success: bool, result: Any, serializer: Serializer | None) -> bytes:
    """arq's result payload. A success of a JSON worker passes its result already encoded exactly (bytes), and
    is spliced in, not encoded twice; a failure passes a JobError (or, under arq's own serializer, the
    exception itself, as arq stores it)."""
    if isinstance(result, EncodedJSON) and serializer is not codec.dumps:
        result = orjson.loads(bytes(result))  # a worker on arq's own serializer stores the value, as arq would
    if serializer is codec.dumps and success and isinstance(result, EncodedJSON):
        rest = _envelope(header, True, None)
        del rest["r"]
        return b'{"r":' + result + b"," + codec.dumps(rest)[1:]
    data = serialize_result(
        header.function, header.args, header.kwargs, header.job_try, header.enqueue_time_ms, success, result,
        header.start_ms or 0, header.finished_ms, f"{header.job_id}:{header.function}", header.queue,
        job_id=header.job_id, serializer=serializer,
    )  # fmt: skip
    if data is None:  # arq could not serialize it: store why, never drop the outcome
        failure = JobError.of_kind(codec.ErrorKind.unencodable_result, "the result could not be serialized")
        data = (serializer or codec.dumps)(_envelope(header, False, failure))
    return data


def _envelope(header: ResultHeader, success: bool, result: Any) -> dict[str, Any]:
    return {
        "t": header.job_try,
        "f": header.function,
        "a": list(header.args),
        "k": header.kwargs,
        "et": header.enqueue_time_ms,
        "s": success,
        "r": result,
        "st": header.start_ms,
        "ft": header.finished_ms,
        "q": header.queue,
        "id": header.job_id,
        "sc": header.scheduled_ms,
    }


def failure_result(header: ResultHeader, error: JobError) -> bytes:
    """A failed outcome as the platform stores it (JSON)."""
    return codec.dumps(_envelope(header, False, error))


def decode_result(raw: bytes) -> dict[str, Any] | None:
    """A stored result payload, or None when it is not one the platform can read (never unpickled)."""
    try:
        value = codec.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
