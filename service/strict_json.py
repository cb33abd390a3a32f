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

import jsonschema_rs
import orjson

from core.exact_json import INT_MAX, INT_MIN, Unencodable, dumps_exact, find_unencodable
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


# An integer too long for Python to convert from text (sys.get_int_max_str_digits) is beyond 64 bits all the
# same: it is read as this one, so the field that holds it can be named like any other too big.
BEYOND_64_BITS = 1 << 64
_CONVERTIBLE_DIGITS = 4000


def _lenient_int(text: str) -> int:
    return int(text) if len(text) <= _CONVERTIBLE_DIGITS else BEYOND_64_BITS


def _named_refusal(body: bytes, orjson_error: str | None) -> Any:
    """Parse leniently to find what orjson refused (or read inexactly); the value if nothing is wrong. Bytes
    that are not UTF-8 are read as lone surrogates (`surrogateescape`), so the string holding them is named."""
    try:
        text, invalid_utf8 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, invalid_utf8 = body.decode("utf-8", "surrogateescape"), True
    try:
        value = json.loads(text, parse_int=_lenient_int)
    except RecursionError:
        raise InputRejected(("body",), "JSON nested too deep", "too_deep") from None
    except ValueError as exc:  # JSONDecodeError
        raise InputRejected(("body",), f"invalid JSON: {orjson_error or exc}", "json_invalid") from None
    if invalid_utf8:
        found = find_unencodable(value, loc=("body",))
        raise InputRejected(found.loc if found else ("body",), "not valid UTF-8", "not_exact_json")
    if orjson_error is None:
        # Valid JSON that orjson read inexactly (an integer beyond 64 bits): the route checks each job's kwargs
        # and reports every one of them at once, so the body is not refused here.
        return value
    problem = find_unencodable(value, loc=("body",))
    if problem is not None:
        raise InputRejected(problem.loc, problem.reason, "not_exact_json")
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


JSON_VALUE_REF = "#/components/schemas/JsonValue"


# Any JSON value the codec carries exactly: what an untyped (`Any`) argument, or an unknown key a model
# ignores, may hold. Integers beyond 64 bits are the one thing JSON has and the codec does not.
def json_value_schema(ref: str = JSON_VALUE_REF) -> dict[str, Any]:
    return {
        "title": "JsonValue",
        "description": "Any JSON value whose integers fit in 64 bits (-2**63 to 2**64-1).",
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "string"},
            {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
            {"type": "number", "not": {"type": "integer"}},
            {"type": "array", "items": {"$ref": ref}},
            {"type": "object", "additionalProperties": {"$ref": ref}},
        ],
    }


_ANNOTATIONS = {"title", "description", "default", "examples", "deprecated"}


# email-validator (pydantic's EmailStr) refuses the special-use names (RFC 6761); the schema says so too.
EMAIL_DOMAIN_PATTERN = r"^(?!.*[.@](arpa|invalid|local|localhost|onion|test)\.?$).*$"
_SUBSCHEMA = {"additionalProperties", "items", "not", "if", "then", "else", "contains"}
_SUBSCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
_SUBSCHEMA_MAPS = {"properties", "patternProperties", "$defs"}


def codec_bounded(schema: Any, ref: str = JSON_VALUE_REF) -> Any:
    """A JSON schema that says what the codec carries, so the published schema is the truth: integers
    within 64 bits, and untyped values (and the unknown keys a model ignores) as JsonValue."""
    if not isinstance(schema, dict):
        return schema
    if set(schema) <= _ANNOTATIONS:  # `Any`: nothing but a title or a description
        return {**schema, "$ref": ref}
    bounded = dict(schema)
    for key, value in schema.items():
        if key in _SUBSCHEMA:
            bounded[key] = codec_bounded(value, ref)
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            bounded[key] = [codec_bounded(item, ref) for item in value]
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            bounded[key] = {name: codec_bounded(item, ref) for name, item in value.items()}
    if bounded.get("format") == "email":
        bounded.setdefault("pattern", EMAIL_DOMAIN_PATTERN)
    if bounded.get("type") == "integer":
        bounded.setdefault("minimum", INT_MIN)
        bounded.setdefault("maximum", INT_MAX)
    if bounded.get("type") == "object" and bounded.get("additionalProperties", True) is True:
        bounded["additionalProperties"] = {"$ref": ref}
    return bounded


_VALIDATORS: dict[type, Any] = {}


def _published_schema_errors(spec: JobSpec, kwargs: dict[str, Any]) -> Any:
    """The kwargs against the schema `GET /v1/functions` publishes: pydantic alone would also take `false`
    for a float, or `"5"` for an int, which the schema (and so every generated client) says is wrong."""
    validator = _VALIDATORS.get(spec.arguments)
    if validator is None:
        schema = codec_bounded(spec.arguments.model_json_schema(), "#/$defs/JsonValue")
        schema.setdefault("$defs", {})["JsonValue"] = json_value_schema("#/$defs/JsonValue")
        validator = _VALIDATORS[spec.arguments] = jsonschema_rs.validator_for(schema)
    return None if validator.is_valid(kwargs) else next(validator.iter_errors(kwargs))


def _check_depth(kwargs: dict[str, Any], loc: Loc, max_depth: int) -> None:
    too_deep = deeper_than(kwargs, max_depth)
    if too_deep is not None:
        raise InputRejected((*loc, *too_deep), f"nested deeper than {max_depth} levels", "too_deep")


def check_kwargs(spec: JobSpec, kwargs: dict[str, Any], loc: Loc, max_bytes: int, max_depth: int) -> None:
    """Raise InputRejected (or pydantic's ValidationError) unless `kwargs` reach the job exactly and
    within the size and depth limits.

    The kwargs come from a strictly parsed body, so they are exact as sent; held to the published schema,
    which types every argument, no validator gets a string to turn into NaN or a huge integer either. So the
    common case is one schema check and one encoding, and pydantic runs here only to explain a refusal.
    """
    try:
        encoded = dumps_exact(kwargs)
    except Unencodable as exc:
        _check_depth(kwargs, loc, max_depth)  # too deep is what the encoder stops at first: say so
        raise InputRejected((*loc, *exc.loc), exc.reason, "not_exact_json") from None
    if encoded.count(b"[") + encoded.count(b"{") > max_depth:  # only then can it nest that deep: walk it
        _check_depth(kwargs, loc, max_depth)
    mismatch = _published_schema_errors(spec, kwargs)
    if mismatch is not None:
        spec.validate(kwargs)  # pydantic's words for what is wrong, when it sees it too
        raise InputRejected((*loc, *mismatch.instance_path), mismatch.message, "schema_mismatch")
    if len(encoded) > max_bytes:
        raise InputRejected(loc, f"kwargs take {len(encoded)} bytes as JSON; the limit is {max_bytes}", "too_large")
