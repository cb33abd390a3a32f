"""Strict, round-tripping input: what the API accepts reaches the job exactly.

A body is parsed by orjson, which refuses NaN, infinities and invalid Unicode, but silently reads an integer
beyond 64 bits as a float. So a refused body, or one with a long run of digits, is parsed again by the
standard library (which reads all of those) just to name the offending field through `core.exact_json`.
Job kwargs are then held to MAX_KWARGS_BYTES and MAX_KWARGS_DEPTH, and checked again after validation,
since a validator can turn `"nan"` or `"1e999"` into a float JSON cannot carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic_core import to_jsonable_python

from core.exact_json import Unencodable, dumps_exact, find_unencodable
from core.registry import JobSpec

_LONG_DIGITS = re.compile(rb"\d{19}")  # the shortest integer that may not fit in 64 bits
Loc = tuple[str | int, ...]


class InputRejected(ValueError):
    """Input the API refuses with a 422 naming where."""

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str) -> None:
        super().__init__(msg)
        self.loc = tuple(loc)
        self.msg = msg
        self.type_ = type_


def parse_body(body: bytes, max_depth: int) -> Any:
    """The JSON value of a request body; raises InputRejected naming what it cannot carry exactly."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _named_refusal(body, str(exc))
    if _LONG_DIGITS.search(body):
        value = _named_refusal(body, None)
    if body.count(b"[") + body.count(b"{") > max_depth:
        too_deep = deeper_than(value, max_depth)
        if too_deep is not None:
            raise InputRejected(("body", *too_deep), f"nested deeper than {max_depth} levels", "too_deep")
    return value


def _named_refusal(body: bytes, orjson_error: str | None) -> Any:
    """Parse leniently to find what orjson refused (or read inexactly); the value if nothing is wrong."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise InputRejected(("body",), "JSON nested too deep", "too_deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InputRejected(("body",), f"invalid JSON: {orjson_error or exc}", "json_invalid") from None
    problem = find_unencodable(value, loc=("body",))
    if problem is not None:
        raise InputRejected(problem.loc, problem.reason, "value_not_exact")
    if orjson_error is not None:
        raise InputRejected(("body",), f"invalid JSON: {orjson_error}", "json_invalid")
    return value


def deeper_than(value: Any, limit: int) -> Loc | None:
    """Where `value` nests more than `limit` containers deep (the value itself is level 1), or None."""
    stack: list[tuple[Any, int, Loc]] = [(value, 1, ())]
    while stack:
        item, depth, loc = stack.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if depth > limit:
            return loc
        stack.extend((child, depth + 1, (*loc, key)) for key, child in children)
    return None


def check_kwargs(spec: JobSpec, kwargs: dict[str, Any], loc: Loc, max_bytes: int, max_depth: int) -> None:
    """Raise InputRejected (or pydantic's ValidationError) unless `kwargs` reach the job exactly and
    within the size and depth limits."""
    too_deep = deeper_than(kwargs, max_depth)
    if too_deep is not None:
        raise InputRejected((*loc, *too_deep), f"nested deeper than {max_depth} levels", "too_deep")
    validated = to_jsonable_python(spec.validate(kwargs), inf_nan_mode="constants")
    try:
        encoded = dumps_exact(validated)
    except Unencodable as exc:
        raise InputRejected((*loc, *exc.loc), exc.reason, "value_not_exact") from None
    if len(encoded) > max_bytes:
        raise InputRejected(loc, f"kwargs take {len(encoded)} bytes as JSON; the limit is {max_bytes}", "too_large")
