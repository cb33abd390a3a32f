"""The registry of job functions and cron jobs, and the argument contract derived from each signature.

A job is an `async def name(ctx: JobContext, arg: T, ...)`; its annotated parameters become a pydantic
model, so the API validates a request (and publishes a JSON schema) before anything reaches Redis,
and the worker validates the same contract again before the function runs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, create_model

from core.retry import RetryPolicy

JobFunction = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=JobFunction)


class UnknownFunction(LookupError):
    """No job function is registered under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no job function named {name!r} is registered")
        self.name = name


@dataclass(frozen=True)
class JobOptions:
    """Per-function overrides; None means the platform default from settings."""

    timeout_s: float | None = None
    max_tries: int | None = None
    keep_result_s: float | None = None
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class JobSpec:
    """A registered job: its public name, the coroutine, its argument model and options."""

    name: str
    function: JobFunction
    arguments: type[BaseModel]
    description: str
    options: JobOptions

    def validate(self, kwargs: dict[str, Any]) -> BaseModel:
        """Validate keyword arguments against the signature; raises pydantic's ValidationError."""
        return self.arguments.model_validate(kwargs)

    def json_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments in their JSON form, ready for the wire."""
        return self.validate(kwargs).model_dump(mode="json")


@dataclass(frozen=True)
class CronSpec:
    """A registered cron job: a job without arguments that runs on a schedule."""

    name: str
    function: JobFunction
    description: str
    schedule: dict[str, int | set[int] | None]
    options: JobOptions
    run_at_startup: bool = False


def _describe(function: JobFunction) -> str:
    return inspect.cleandoc(function.__doc__ or "").strip()


def arguments_model(function: JobFunction) -> type[BaseModel]:
    """Build the pydantic model of a job's parameters (every one after `ctx`)."""
    hints = get_type_hints(function, include_extras=True)
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters:
        raise TypeError(f"{function.__name__} must take the job context as its first parameter")
    fields: dict[str, Any] = {}
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            raise TypeError(f"{function.__name__}: parameter {parameter.name!r} must be a plain keyword parameter")
        if parameter.name not in hints:
            raise TypeError(f"{function.__name__}: parameter {parameter.name!r} needs a type annotation")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    model_name = "".join(part.title() for part in function.__name__.split("_")) + "Arguments"
    return create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)


@dataclass
class Registry:
    """Name -> job and cron specs. One per process; jobs register by importing their module."""

    jobs: dict[str, JobSpec] = field(default_factory=dict)
    crons: dict[str, CronSpec] = field(default_factory=dict)

    def _check_new(self, function: JobFunction) -> None:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"{function.__name__} must be an async def")
        existing = self.jobs.get(function.__name__) or self.crons.get(function.__name__)
        if existing is not None and existing.function is not function:
            raise ValueError(f"a job named {function.__name__!r} is already registered")

    @overload
    def job(self, function: F) -> F: ...

    @overload
    def job(
        self,
        *,
        timeout: float | None = None,
        max_tries: int | None = None,
        keep_result: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Callable[[F], F]: ...

    def job(
        self,
        function: F | None = None,
        *,
        timeout: float | None = None,
        max_tries: int | None = None,
        keep_result: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> F | Callable[[F], F]:
        """Register a job function; usable as `@job` or `@job(timeout=30, max_tries=3, retry=RetryPolicy(...))`."""

        def register(fn: F) -> F:
            self._check_new(fn)
            options = JobOptions(timeout_s=timeout, max_tries=max_tries, keep_result_s=keep_result, retry=retry)
            self.jobs[fn.__name__] = JobSpec(fn.__name__, fn, arguments_model(fn), _describe(fn), options)
            return fn

        return register(function) if function is not None else register

    def cron(
        self,
        *,
        second: int | set[int] | None = 0,
        minute: int | set[int] | None = None,
        hour: int | set[int] | None = None,
        day: int | set[int] | None = None,
        month: int | set[int] | None = None,
        weekday: int | set[int] | None = None,
        run_at_startup: bool = False,
        timeout: float | None = None,
        keep_result: float | None = None,
    ) -> Callable[[F], F]:
        """Register an argument-less job to run on a schedule (arq's cron fields; None means every)."""

        def register(fn: F) -> F:
            self._check_new(fn)
            if len(inspect.signature(fn).parameters) != 1:
                raise TypeError(f"cron job {fn.__name__} must take only the job context")
            schedule = {
                "month": month,
                "day": day,
                "weekday": weekday,
                "hour": hour,
                "minute": minute,
                "second": second,
            }
            options = JobOptions(timeout_s=timeout, max_tries=1, keep_result_s=keep_result)
            self.crons[fn.__name__] = CronSpec(fn.__name__, fn, _describe(fn), schedule, options, run_at_startup)
            return fn

        return register

    def get(self, name: str) -> JobSpec:
        try:
            return self.jobs[name]
        except KeyError:
            raise UnknownFunction(name) from None

    def spec_of(self, function: JobFunction) -> JobSpec:
        return self.get(function.__name__)


registry = Registry()
job = registry.job
cron = registry.cron


def every(seconds: int) -> set[int] | int:
    """Cron `second` (or `minute`) values for "every N": every(15) -> {0, 15, 30, 45}."""
    return set(range(0, 60, seconds)) if seconds < 60 else 0


def load_job_modules(modules: Iterable[str]) -> Registry:
    """Import the modules that hold jobs so their decorators register them; returns the registry."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"JOB_MODULES names {module!r}, which cannot be imported: {exc}") from exc
    return registry
