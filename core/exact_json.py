"""JSON that carries a value exactly, or says where it cannot.

orjson already refuses bytes, arbitrary objects, integers beyond 64 bits and lone surrogates, but it writes
NaN and the infinities as `null`, silently. `dumps_exact` refuses those too, and on any refusal walks the value
once to name the offending path, so a client or a job author is told which field to fix. The walk runs only
on the slow path (a refusal, or a `null` in the output), never on the common one.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from pydantic import BaseModel

# What the codec carries: orjson's integer range.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
MAX_DEPTH = 200  # below orjson's own recursion limit (255), so a deep value is named, not a crash


class Unencodable(ValueError):
    """A value JSON cannot carry exactly; `path` says where (`$` is the value itself)."""

    def __init__(self, path: str, reason: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.loc = loc  # the same place as keys and indexes, for an HTTP error's `loc`


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps_exact(value: Any) -> bytes:
    """Encode `value` as JSON, or raise Unencodable naming the first part JSON cannot carry exactly."""
    try:
        encoded = orjson.dumps(value, default=_default)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise find_unencodable(value) or Unencodable("$", str(exc)) from None
    if b"null" in encoded:  # NaN and infinities come out as null: tell them apart from a real None
        problem = find_unencodable(value)
        if problem is not None:
            raise problem
    return encoded


def _key_path(path: str, key: object) -> str:
    return f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else f"{path}[{key!r}]"


def find_unencodable(
    value: Any, path: str = "$", depth: int = 0, loc: tuple[str | int, ...] = ()
) -> Unencodable | None:
    """The first part of `value` that JSON cannot carry exactly, or None."""
    if depth > MAX_DEPTH:
        return Unencodable(path, f"nested deeper than {MAX_DEPTH} levels", loc)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else Unencodable(path, "integer beyond 64 bits", loc)
    if isinstance(value, float):
        return None if math.isfinite(value) else Unencodable(path, f"{value!r} is not a JSON number", loc)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return Unencodable(path, "string holds a lone surrogate (not valid Unicode)", loc)
        return None
    if isinstance(value, BaseModel):
        return find_unencodable(value.model_dump(mode="python"), path, depth, loc)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return Unencodable(path, f"key {key!r} is not a string", loc)
            problem = find_unencodable(key, _key_path(path, "<key>"), depth + 1, loc) or find_unencodable(
                item, _key_path(path, key), depth + 1, (*loc, key)
            )
            if problem is not None:
                return problem
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            problem = find_unencodable(item, f"{path}[{index}]", depth + 1, (*loc, index))
            if problem is not None:
                return problem
        return None
    try:  # what orjson carries natively (datetime, UUID, enum, dataclass): fine if it encodes
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return Unencodable(path, f"{type(value).__name__} is not JSON", loc)
    return None
