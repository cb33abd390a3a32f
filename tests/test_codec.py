"""`core.codec`: JSON on the wire; an exception travels as a marker and comes back as a `JobError`;
anything that is not JSON (a pickle above all) is refused."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from pydantic import BaseModel

from core import codec


class Receipt(BaseModel):
    order_id: int
    total: float


class Opaque:
    """An object JSON cannot represent."""


class TouchOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


def test_job_round_trips() -> None:
    job = {"t": 1, "f": "echo", "a": [], "k": {"value": {"nested": [1, 2.5, "x", None, True]}}, "et": 1_700_000_000_000}
    encoded = codec.dumps(job)
    assert encoded.startswith(b"{")
    assert codec.loads(encoded) == job


def test_models_tuples_and_sets_become_json() -> None:
    decoded = codec.loads(codec.dumps({"r": Receipt(order_id=1, total=2.5), "pair": (1, 2), "tags": {"a"}}))
    assert decoded == {"r": {"order_id": 1, "total": 2.5}, "pair": [1, 2], "tags": ["a"]}


def test_an_unsupported_value_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        codec.dumps({"r": Opaque()})


def test_an_exception_result_comes_back_as_a_job_error() -> None:
    decoded = codec.loads(codec.dumps({"s": False, "r": ValueError("boom")}))
    error = decoded["r"]
    assert isinstance(error, codec.JobError)
    assert (error.type, error.message) == ("ValueError", "boom")
    assert error.kind == "exception"
    assert not error.aborted
    assert decoded["s"] is False


def test_a_cancelled_job_is_marked_aborted() -> None:
    error = codec.loads(codec.dumps({"s": False, "r": asyncio.CancelledError()}))["r"]
    assert isinstance(error, codec.JobError)
    assert (error.kind, error.type) == ("aborted", "JobAborted")
    assert error.aborted


def test_a_result_written_before_error_kinds_still_reads_as_aborted() -> None:
    marker = {codec.ERROR_MARKER: {"type": "CancelledError", "message": "aborted before it started"}}
    error = codec.loads(codec.dumps({"s": False, "r": marker}))["r"]
    assert isinstance(error, codec.JobError)
    assert error.aborted and error.kind == "aborted"


def test_a_timeout_without_message_gets_one() -> None:
    error = codec.loads(codec.dumps({"s": False, "r": TimeoutError()}))["r"]
    assert (error.kind, error.type, error.message) == ("timeout", "JobTimeout", "job timed out")


def test_a_job_error_keeps_its_type_through_another_round_trip() -> None:
    error = codec.loads(codec.dumps({"s": False, "r": codec.JobError("KeyError", "'sku'")}))["r"]
    assert (error.type, error.message) == ("KeyError", "'sku'")
    sent = codec.JobError.of_kind(codec.ErrorKind.worker_lost, "gone", traceback="Traceback ...")
    error = codec.loads(codec.dumps({"s": False, "r": sent}))["r"]
    assert (error.kind, error.type, error.message, error.traceback) == (
        "worker_lost",
        "WorkerLost",
        "gone",
        "Traceback ...",
    )


def test_the_error_marker_is_only_read_in_a_result() -> None:
    marker = {codec.ERROR_MARKER: {"type": "ValueError", "message": "boom"}}
    assert codec.loads(codec.dumps({"k": marker})) == {"k": marker}
    assert codec.loads(codec.dumps([marker])) == [marker]


@pytest.mark.parametrize("raw", [b"\x80\x04K\x01.", b"not json", b"", b"{'single': 'quotes'}"])
def test_non_json_bytes_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        codec.loads(raw)


def test_a_pickle_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps({"t": 1, "f": "echo", "a": (), "k": {"value": TouchOnUnpickle(marker)}, "et": 0})
    with pytest.raises(ValueError):
        codec.loads(payload)
    assert not marker.exists()


def test_a_successful_result_that_looks_like_an_error_stays_a_result() -> None:
    data = {"s": True, "r": {"__error__": {"type": "x", "message": "y"}}}
    assert codec.loads(codec.dumps(data)) == data
    odd = {"s": False, "r": {"__error__": "not a marker"}}
    assert codec.loads(codec.dumps(odd)) == odd
