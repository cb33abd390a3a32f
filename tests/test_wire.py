"""`core.wire`: arq's job and result payloads as the platform writes them (JSON), and as arq reads them."""

from __future__ import annotations

import pickle

import pytest
from arq.jobs import deserialize_job_raw, deserialize_result

from core import codec, wire
from core.codec import ErrorKind, JobError
from core.correlation import Correlation
from core.exact_json import Unencodable

HEADER = wire.ResultHeader("j1", "echo", (), {"value": 1}, 2, 1_000, 2_000, 3_000, "arq:queue", 1_500)


def test_a_job_payload_round_trips_and_is_arqs_shape() -> None:
    raw = wire.encode_job("echo", {"value": [1, None]}, 1_000)
    assert codec.loads(raw) == {"t": None, "f": "echo", "a": [], "k": {"value": [1, None]}, "et": 1_000}
    assert wire.decode_job(raw, codec.loads) == wire.JobPayload("echo", (), {"value": [1, None]}, None, 1_000)


def test_kwargs_json_cannot_carry_are_refused_at_enqueue() -> None:
    with pytest.raises(Unencodable) as refused:
        wire.encode_job("echo", {"value": float("nan")}, 1)
    assert refused.value.loc == ("value",)


@pytest.mark.parametrize("raw", [b"not json", b"[1]", pickle.dumps({"f": "echo"})])
def test_a_payload_that_is_not_a_job_is_unreadable_and_never_unpickled(raw: bytes) -> None:
    with pytest.raises(wire.UnreadableJob):
        wire.decode_job(raw, codec.loads)


def test_a_success_is_spliced_in_once_and_arq_reads_it() -> None:
    raw = wire.encode_result(HEADER, True, wire.EncodedJSON(b'{"r":[1,2]}'), codec.dumps)
    data = codec.loads(raw)
    assert data["r"] == {"r": [1, 2]} and data["s"] is True and data["sc"] == 1_500
    result = deserialize_result(raw, deserializer=codec.loads)
    assert result.success and result.result == {"r": [1, 2]} and result.job_try == 2


def test_a_failure_keeps_its_kind_and_traceback() -> None:
    error = JobError.of_kind(ErrorKind.timeout, "timed out after 1s", "Traceback ...")
    data = codec.loads(wire.failure_result(HEADER, error))
    assert data["s"] is False and isinstance(data["r"], JobError)
    assert (data["r"].kind, data["r"].type, data["r"].traceback) == ("timeout", "JobTimeout", "Traceback ...")


def test_the_lease_token_tells_when_a_job_started() -> None:
    assert wire.lease_started_ms(b"host:12:ab12cd:1795616351840:7:3") == 1795616351840
    assert wire.lease_started_ms(b"1") is None and wire.lease_started_ms(None) is None


def test_bytes_a_plain_function_returns_are_not_taken_for_encoded_json() -> None:
    raw = wire.encode_result(HEADER, True, b'1,"s":false', codec.dumps)
    data = codec.loads(raw)
    assert data["s"] is False and data["r"] == "unable to serialize result"  # arq's own answer


def test_a_worker_on_arqs_serializer_stores_values_and_picklable_errors() -> None:
    success = deserialize_result(wire.encode_result(HEADER, True, wire.EncodedJSON(b'{"a":1}'), None))
    assert success.result == {"a": 1}
    failure = deserialize_result(wire.encode_result(HEADER, False, JobError.of_kind(ErrorKind.timeout, "t"), None))
    assert isinstance(failure.result, JobError) and failure.result.kind == "timeout"


def test_the_request_s_id_and_traceparent_ride_along_and_arq_ignores_them() -> None:
    carried = Correlation("req-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    raw = wire.encode_job("echo", {"value": 1}, 1_000, carried)
    assert deserialize_job_raw(raw, deserializer=codec.loads) == ("echo", [], {"value": 1}, None, 1_000)
    assert wire.decode_job(raw, codec.loads).correlation == carried
    only_id = wire.encode_job("echo", {}, 1, Correlation("req-2", None))
    assert codec.loads(only_id)["rid"] == "req-2" and "tp" not in codec.loads(only_id)
    assert wire.decode_job(only_id, codec.loads).correlation == Correlation("req-2", None)
