"""Strict, round-tripping input (service/body.py, service/strict_json.py): what is accepted reaches the job
exactly; everything else is a 4xx naming the field, never a 500, and never echoes much of the input."""

from __future__ import annotations

import httpx
import pytest
from arq.connections import ArqRedis

JSON = {"Content-Type": "application/json"}


async def post_raw(client: httpx.AsyncClient, body: bytes | str, path: str = "/v1/jobs", **headers: str):
    return await client.post(path, content=body, headers={**JSON, **headers})


def echo(value: str) -> str:
    return '{"function": "echo", "kwargs": {"value": ' + value + "}}"


@pytest.mark.parametrize(
    ("literal", "loc"),
    [
        ("NaN", ["body", "kwargs", "value"]),
        ("Infinity", ["body", "kwargs", "value"]),
        ("-Infinity", ["body", "kwargs", "value"]),
        ("1e400", ["body", "kwargs", "value"]),
        ("18446744073709551616", ["body", "kwargs", "value"]),
        ("-9223372036854775809", ["body", "kwargs", "value"]),
        ('{"a": [1, 123456789012345678901234567890]}', ["body", "kwargs", "value", "a", 1]),
        ('"\\ud800"', ["body", "kwargs", "value"]),
    ],
)
async def test_values_json_cannot_carry_are_422_naming_the_field(
    client: httpx.AsyncClient, redis: ArqRedis, literal: str, loc: list[object]
) -> None:
    response = await post_raw(client, echo(literal))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == loc
    assert await redis.zcard("arq:queue") == 0


async def test_nan_in_a_float_argument_is_422_not_stored_as_null(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    body = '{"function": "send_order_receipt", "kwargs": {"order_id": 1, "email": "a@example.com", "total": NaN}}'
    response = await post_raw(client, body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "kwargs", "total"]
    for text in ('"nan"', '"inf"', '"-Infinity"'):  # pydantic would read these strings as a float
        response = await post_raw(client, body.replace("NaN", text))
        assert response.status_code == 422, text
        assert response.json()["detail"][0]["loc"] == ["body", "kwargs", "total"]
    assert await redis.zcard("arq:queue") == 0


async def test_an_int_argument_beyond_64_bits_from_a_string_is_422(client: httpx.AsyncClient) -> None:
    body = '{"function": "send_order_receipt", "kwargs": {"order_id": "123456789012345678901234567890", '
    body += '"email": "a@example.com", "total": 1.5}}'
    response = await post_raw(client, body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "kwargs", "order_id"]


async def test_nan_in_a_field_that_fails_validation_is_422_not_500(client: httpx.AsyncClient) -> None:
    body = '{"function": "send_welcome_email", "kwargs": {"email": NaN, "name": Infinity}}'
    response = await post_raw(client, body)
    assert response.status_code == 422
    body2 = '{"function": "send_welcome_email", "kwargs": {"email": "a@example.com", "name": 1}, "defer_by": NaN}'
    response = await post_raw(client, body2)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "defer_by"]


async def test_deep_nesting_is_422_naming_where(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    for depth in (40, 300, 5000):
        response = await post_raw(client, echo("[" * depth + "]" * depth))
        assert response.status_code == 422, depth
        assert response.json()["detail"][0]["type"] == "too_deep"
    response = await post_raw(client, echo("[" * 20 + "]" * 20))
    assert response.status_code == 202
    response = await post_raw(client, echo("[" * 35 + "]" * 35))
    assert response.status_code == 422
    # Within the body's own limit, one level past MAX_KWARGS_DEPTH: the kwargs check names it.
    response = await post_raw(client, echo("[" * 32 + "]" * 32))
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "too_deep"
    assert response.json()["detail"][0]["loc"][:3] == ["body", "kwargs", "value"]
    assert (await post_raw(client, echo("[" * 31 + "]" * 31))).status_code == 202
    assert (await post_raw(client, echo('"' + "[{" * 40 + '"'))).status_code == 202  # brackets in a string
    assert response.json()["detail"][0]["loc"][:3] == ["body", "kwargs", "value"]


async def test_oversized_kwargs_are_422(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    response = await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": "x" * 70_000}})
    assert response.status_code == 422
    assert response.json()["detail"][0] == {
        "loc": ["body", "kwargs"],
        "msg": response.json()["detail"][0]["msg"],
        "type": "too_large",
    }
    assert await redis.zcard("arq:queue") == 0


async def test_envelope_is_parsed_strictly(client: httpx.AsyncClient) -> None:
    base = {"function": "echo", "kwargs": {"value": 1}}
    for field, value in [
        ("defer_by", True),
        ("defer_by", "5"),
        ("defer_until", 1_800_000_000),
        ("defer_until", "2026-12-01"),
        ("defer_until", True),
        ("job_id", 12),
        ("job_id", "has space"),
    ]:
        response = await client.post("/v1/jobs", json={**base, field: value})
        assert response.status_code == 422, (field, value)
        assert response.json()["detail"][0]["loc"] == ["body", field]
    accepted = await client.post("/v1/jobs", json={**base, "defer_by": 5})
    assert accepted.status_code == 202 and accepted.json()["status"] == "deferred"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "", "application/xml"])
async def test_a_body_that_is_not_json_is_415(client: httpx.AsyncClient, content_type: str) -> None:
    body = b'{"function": "echo", "kwargs": {"value": 1}}'
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/v1/jobs", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["detail"][0]["type"] == "unsupported_media_type"
    assert (await post_raw(client, body, **{"Content-Type": "application/json; charset=utf-8"})).status_code == 202


async def test_invalid_json_and_invalid_utf8_are_422(client: httpx.AsyncClient) -> None:
    for body in (b"{", b'{"function": "echo", "kwargs": {"value": "\xed\xa0\x80"}}', b"\xff\xfe{}", b"[1,]"):
        response = await post_raw(client, body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"][0] == "body"


async def test_error_bodies_quote_at_most_a_short_prefix(client: httpx.AsyncClient) -> None:
    bad_job = {"function": "send_welcome_email", "kwargs": {"email": "x" * 500, "name": 1}}
    response = await client.post("/v1/jobs/batch", json={"jobs": [bad_job] * 1000})
    assert response.status_code == 422
    assert len(response.content) < 10_000
    long_key = {"function": "echo", "kwargs": {"value": 1, "k" * 10_000: 1}}
    response = await client.post("/v1/jobs", json=long_key)
    assert response.status_code == 422 and len(response.content) < 1_000
    response = await client.post("/v1/jobs", json={"function": "f" * 50_000, "kwargs": {}})
    assert response.status_code == 422 and len(response.content) < 1_000


async def test_bad_paging_is_422(client: httpx.AsyncClient) -> None:
    for params in ({"offset": "9223372036854775807"}, {"offset": "-1"}, {"limit": "0"}, {"limit": "100000"}):
        response = await client.get("/v1/dead", params=params)
        assert response.status_code == 422, params
        assert isinstance(response.json()["detail"], list)


async def test_delete_dead_without_a_selector_is_422_with_a_list_detail(client: httpx.AsyncClient) -> None:
    for params in ({}, {"all": "false"}):
        response = await client.delete("/v1/dead", params=params)
        assert response.status_code == 422
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["query"] and problem["type"] == "selector_missing"
    narrowed = await client.delete("/v1/dead", params={"function": "echo", "all": "true"})
    assert narrowed.status_code == 200 and narrowed.json() == {"deleted": 0}


async def test_accepted_values_reach_the_job_exactly(client: httpx.AsyncClient, run_burst_worker) -> None:
    value = {"max": 18446744073709551615, "min": -9223372036854775808, "float": 2.5e-300, "text": "é😀\u0000"}
    job_id = (await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": value}})).json()["job_id"]
    await run_burst_worker()
    outcome = (await client.get(f"/v1/jobs/{job_id}/result")).json()
    assert outcome["status"] == "complete"
    assert outcome["result"] == value


TYPED_RECEIPT = "/v1/functions/send_order_receipt/jobs"
RECEIPT = {"order_id": 1, "email": "a@example.com", "total": 1.5}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order_id", "5"),  # pydantic's lax mode would take it; the published schema says integer
        ("order_id", 18446744073709551616),
        ("order_id", True),
        ("total", False),
        ("total", "nan"),
        ("email", 7),
        ("defer_by", True),
        ("defer_until", 1_800_000_000),
        ("defer_until", "2026-12-01"),
        ("job_id", 12),
    ],
)
async def test_typed_bodies_are_held_to_their_published_schema(
    client: httpx.AsyncClient, redis: ArqRedis, field: str, value: object
) -> None:
    response = await client.post(TYPED_RECEIPT, json={**RECEIPT, field: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert await redis.zcard("arq:queue") == 0


async def test_typed_bodies_have_the_kwargs_limits(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    big = await client.post("/v1/functions/echo/jobs", json={"value": "x" * 70_000})
    assert big.status_code == 422 and big.json()["detail"][0]["type"] == "too_large"
    deep = await post_raw(client, '{"value": ' + "[" * 35 + "]" * 35 + "}", path="/v1/functions/echo/jobs")
    assert deep.status_code == 422 and deep.json()["detail"][0]["type"] == "too_deep"
    not_object = await post_raw(client, "[1]", path="/v1/functions/echo/jobs")
    assert not_object.status_code == 422 and not_object.json()["detail"][0]["loc"] == ["body"]
    assert await redis.zcard("arq:queue") == 0


async def test_typed_options_take_what_post_v1_jobs_takes(client: httpx.AsyncClient) -> None:
    """An ISO time without seconds (as the published pattern allows), and an integer defer_by."""
    late = await client.post(TYPED_RECEIPT, json={**RECEIPT, "defer_until": "2767-11-22t21:07z"})
    assert late.status_code == 202, late.text
    assert late.json()["status"] == "deferred"
    soon = await client.post(TYPED_RECEIPT, json={**RECEIPT, "defer_by": 5})
    assert soon.status_code == 202 and soon.json()["status"] == "deferred"


async def test_bytes_that_are_not_utf8_are_named_where_they_are(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    in_value = await post_raw(client, echo('{"p": "ok \xff\xfe"}').encode("latin-1"))
    in_key = await post_raw(client, echo('{"k\xe9y": 1}').encode("latin-1"))
    for response, loc in ((in_value, ["body", "kwargs", "value", "p"]), (in_key, ["body", "kwargs", "value"])):
        assert response.status_code == 422, response.text
        problem = response.json()["detail"][0]
        assert problem["loc"] == loc and problem["msg"] == "not valid UTF-8", problem
    assert await redis.zcard("arq:queue") == 0


async def test_an_integer_too_long_to_convert_is_named_as_beyond_64_bits(
    client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    response = await post_raw(client, echo('{"p": ' + "9" * 5000 + "}"))
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["loc"] == ["body", "kwargs", "value", "p"] and "64 bits" in problem["msg"], problem
    assert await redis.zcard("arq:queue") == 0
