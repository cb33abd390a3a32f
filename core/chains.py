"""Chains: a job enqueued to run after another one succeeds, given its result as a named argument.

`then` entries are validated when the parent is enqueued, against the child's signature minus the argument
that receives the result (and, where both are plain classes, the parent's declared return type must fit that
argument's annotation). Each child gets its id then. The whole chain travels in the parent's payload (`"c"`),
and each job of the chain has a links hash (`platform:chain:<id>`, written by the enqueue script): the parent's
children, a child's parent and its status until it is enqueued (`pending`, then `enqueued` or `not_run` with the
reason). On the parent's success the worker builds each child's payload with the result, and the finish script
enqueues the children atomically with the parent's outcome (fenced: a stale finish enqueues nothing). A parent
that fails for good, dies or is aborted ends every child, recursively, as `not_run` with the reason.

A job without `then` writes no links and its payload carries nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ParamSpec, TypeVar, get_type_hints
from uuid import uuid4

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from core import wire
from core.exact_json import Unencodable, dumps_exact
from core.registry import Job, JobSpec, spec_of

P = ParamSpec("P")
R = TypeVar("R")
MAX_CHAIN_JOBS = 100  # children of one enqueued job, at every depth together


@dataclass(frozen=True)
class Then:
    """A job to run after its parent succeeds: `result_arg` receives the parent's result."""

    spec: JobSpec
    result_arg: str
    kwargs: dict[str, Any]
    then: tuple[Then, ...] = ()


def then(job: Job[P, R], result_arg: str, /, *, _then: Sequence[Then] = (), **kwargs: Any) -> Then:
    """`then(render_report, "data", fmt="pdf")`: run `render_report(data=<parent's result>, fmt="pdf")` after
    the parent succeeds; `_then` chains further jobs after this one."""
    return Then(spec_of(job), result_arg, dict(kwargs), tuple(_then))


class ChainInvalid(ValueError):
    """A `then` entry failed its contract; `problems` are in the API's error shape, `loc` from the `then` list
    (e.g. `["then", 0, "kwargs", "x"]`)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems))
        self.problems = problems

    @classmethod
    def one(cls, loc: tuple[str | int, ...], msg: str, type_: str) -> ChainInvalid:
        return cls([{"loc": list(loc), "msg": msg, "type": type_}])


@dataclass(frozen=True)
class Child:
    """A validated child, with its id: what the parent's payload carries."""

    job_id: str
    function: str
    result_arg: str
    kwargs: dict[str, Any]
    children: tuple[Child, ...] = ()

    def wire(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.job_id, "f": self.function, "r": self.result_arg, "k": self.kwargs}
        if self.children:
            entry["c"] = [child.wire() for child in self.children]
        return entry


@cache
def arguments_without(arguments: type[BaseModel], result_arg: str) -> type[BaseModel]:
    """The child's argument model without the argument that receives the parent's result (the API publishes
    and checks a `then` entry's kwargs against it)."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in arguments.model_fields.items() if name != result_arg
    }
    config = ConfigDict(extra="forbid", allow_inf_nan=False, ser_json_inf_nan="constants")
    model: type[BaseModel] = create_model(f"{arguments.__name__}Without_{result_arg}", __config__=config, **fields)
    return model


def _does_not_fit(parent: JobSpec, child: Then) -> str | None:
    """Why the parent's declared return type cannot fill the child's argument, when both are plain classes."""
    returns = get_type_hints(parent.function).get("return")
    wanted = child.spec.arguments.model_fields[child.result_arg].annotation
    if not isinstance(returns, type) or not isinstance(wanted, type) or wanted is object:
        return None
    if issubclass(returns, wanted) or (wanted is float and issubclass(returns, int)):
        return None
    return f"{parent.name} returns {returns.__name__}; {child.spec.name}'s {child.result_arg} takes {wanted.__name__}"


def prepare(parent: JobSpec, entries: Sequence[Then], loc: tuple[str | int, ...] = ("then",)) -> tuple[Child, ...]:
    """Validate the children (recursively) and give each its id; raises ChainInvalid naming every bad field."""
    children, problems = [], []
    for index, entry in enumerate(entries):
        here = (*loc, index)
        fields = entry.spec.arguments.model_fields
        if entry.result_arg not in fields:
            msg = f"{entry.spec.name} has no parameter {entry.result_arg!r} to receive the result"
            problems.append({"loc": [*here, "result_arg"], "msg": msg, "type": "unknown_argument"})
            continue
        if entry.result_arg in entry.kwargs:
            msg = "receives the parent's result; leave it out of kwargs"
            problems.append({"loc": [*here, "kwargs", entry.result_arg], "msg": msg, "type": "result_arg_given"})
            continue
        misfit = _does_not_fit(parent, entry)
        if misfit is not None:
            problems.append({"loc": [*here, "result_arg"], "msg": misfit, "type": "result_type_mismatch"})
            continue
        try:
            model = arguments_without(entry.spec.arguments, entry.result_arg)
            kwargs = model.model_validate(entry.kwargs).model_dump(mode="json")
            dumps_exact(kwargs)
        except ValidationError as exc:
            problems += [
                {"loc": [*here, "kwargs", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
            continue
        except Unencodable as exc:
            problems.append({"loc": [*here, "kwargs", *exc.loc], "msg": exc.reason, "type": "not_exact_json"})
            continue
        try:
            grandchildren = prepare(entry.spec, entry.then, (*here, "then"))
        except ChainInvalid as exc:
            problems += exc.problems
            continue
        children.append(Child(uuid4().hex, entry.spec.name, entry.result_arg, kwargs, grandchildren))
    if problems:
        raise ChainInvalid(problems)
    if loc == ("then",) and count(children) > MAX_CHAIN_JOBS:
        raise ChainInvalid.one(loc, f"at most {MAX_CHAIN_JOBS} chained jobs per enqueue", "too_many")
    return tuple(children)


def count(children: Sequence[Child]) -> int:
    return sum(1 + count(child.children) for child in children)


def payload_fields(children: Sequence[Child]) -> bytes:
    """What the parent's payload carries besides arq's fields: the chain, as the worker reads it back."""
    return b',"c":' + dumps_exact([child.wire() for child in children])


def _links(children: Sequence[Child]) -> list[list[str]]:
    return [[child.job_id, child.function, child.result_arg] for child in children]


def records(job_id: str, children: Sequence[Child]) -> bytes:
    """The links hashes the enqueue script writes for a parent and all its descendants: rows of
    `[id, parent, function, kwargs JSON, result argument, children JSON]` (the parent's own row has no parent)."""
    rows: list[list[str]] = [[job_id, "", "", "", "", dumps_exact(_links(children)).decode()]]
    stack = [(job_id, child) for child in children]
    while stack:
        parent, child = stack.pop()
        links = dumps_exact(_links(child.children)).decode()
        rows.append([child.job_id, parent, child.function, dumps_exact(child.kwargs).decode(), child.result_arg, links])
        stack += [(child.job_id, grandchild) for grandchild in child.children]
    return dumps_exact(rows)


def child_payloads(parent_id: str, chain: list[Any], result_json: bytes, now_ms: int) -> list[tuple[str, str, bytes]]:
    """Each child's payload, given the parent's result: (id, function, payload). Entries of another shape (a
    payload written by something else) are skipped."""
    value = orjson.loads(bytes(result_json))
    parent = b',"p":' + dumps_exact(parent_id)
    made = []
    for entry in chain:
        if not isinstance(entry, dict) or not isinstance(entry.get("k"), dict):
            continue
        job_id, function, arg = entry.get("id"), entry.get("f"), entry.get("r")
        if not (isinstance(job_id, str) and isinstance(function, str) and isinstance(arg, str)):
            continue
        extra = parent + (b',"c":' + dumps_exact(entry["c"]) if entry.get("c") else b"")
        made.append((job_id, function, wire.encode_job(function, {**entry["k"], arg: value}, now_ms, None, extra)))
    return made
