"""`core.exact_json`: JSON that carries a value exactly, or names the path where it cannot."""

from __future__ import annotations

import datetime
import uuid

import orjson
import pytest
from pydantic import BaseModel

from core.exact_json import Unencodable, dumps_exact


class Point(BaseModel):
    x: float


@pytest.mark.parametrize(
    "value",
    [None, {"a": None}, [1, -(2**63), 2**64 - 1], "é✓", {"nested": [{"deep": True}]}, Point(x=1.5), (1, 2)],
)
def test_what_json_carries_is_encoded_unchanged(value: object) -> None:
    expected = value.model_dump() if isinstance(value, BaseModel) else value
    assert orjson.loads(dumps_exact(value)) == (list(expected) if isinstance(expected, tuple) else expected)


@pytest.mark.parametrize(
    ("value", "loc", "reason"),
    [
        ({"a": float("nan")}, ("a",), "nan is not a JSON number"),
        ([1, {"b": float("-inf")}], (1, "b"), "-inf is not a JSON number"),
        ({"n": 2**64}, ("n",), "integer beyond 64 bits"),
        ({"n": -(2**63) - 1}, ("n",), "integer beyond 64 bits"),
        ({"s": "\ud800"}, ("s",), "lone surrogate"),
        ({"b": b"\x00"}, ("b",), "bytes is not JSON"),
        ({"o": object()}, ("o",), "object is not JSON"),
        (Point.model_construct(x=float("nan")), ("x",), "nan"),
    ],
)
def test_what_json_cannot_carry_is_refused_naming_where(value: object, loc: tuple[object, ...], reason: str) -> None:
    with pytest.raises(Unencodable) as refused:
        dumps_exact(value)
    assert refused.value.loc == loc and reason in refused.value.reason


def test_deep_nesting_is_refused_not_a_crash() -> None:
    value: object = 1
    for _ in range(300):
        value = [value]
    with pytest.raises(Unencodable, match="nested deeper"):
        dumps_exact(value)


def test_native_types_orjson_carries_are_accepted() -> None:
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    assert orjson.loads(dumps_exact({"at": moment, "id": ident})) == {"at": moment.isoformat(), "id": str(ident)}
