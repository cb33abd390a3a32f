"""Job functions and cron jobs, and the argument contract derived from each signature.

A job is an `async def name(ctx: JobContext, arg: T, ...)` marked with `@job`; its annotated parameters
become a pydantic model, so the API validates a request (and publishes a JSON schema) before anything reaches
Redis, and the worker validates the same contract again before the function runs. Its return annotation, when
it has one, is the contract its result is encoded against.

Decorating only marks a function. A `Registry` is built at start-up from the job modules named in settings
(`Registry.build`), so each app, worker or test builds its own: there is no process-global registry.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, get_type_hints, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from core import job_limits
from core.context import JobContext
from core.job_limits import JobLimitsError, Limits
from core.priority import Priority, check
from core.retry import RetryPolicy
from settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
JobFunction = Callable[..., Awaitable[Any]]
CronSchedule = dict[str, int | set[int] | None]
JOB_ATTRIBUTE = "__platform_job__"
CRON_ATTRIBUTE = "__platform_cron__"
# A schedule's name is part of Redis keys, job ids and URL paths.
CRON_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class UnknownFunction(LookupError):
    """No job function is registered under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no job function named {name!r} is registered")
        self.name = name


class JobModulesError(ImportError):
    """A module named in JOB_MODULES cannot be imported; the message is one line, naming the module."""


class CronScheduleError(ValueError):
    """A `@cron` schedule cannot run (bad kwargs, time zone or name); the message is one line naming it."""


@dataclass(frozen=True)
class JobOptions:
    """Per-function overrides; None means the platform default from settings."""

    timeout_s: float | None = None
    max_tries: int | None = None
    keep_result_s: float | None = None
    retry: RetryPolicy | None = None
    rate_limit: str | None = None  # "5/s": checked when a registry is built (core/job_limits.py)
    concurrency: int | None = None
    priority: Priority | None = None  # the default priority of its jobs (core/priority.py)
    unique: tuple[str, ...] = ()  # arguments whose values make the job's uniqueness key (core/unique.py)


@dataclass(frozen=True)
class ResolvedOptions:
    """A job's options with the platform's defaults filled in: what the worker runs it with."""

    timeout_s: float
    max_tries: int
    keep_result_s: float
    retry: RetryPolicy


@dataclass(frozen=True)
class JobSpec:
    """A job: its public name, the coroutine, its argument model, result contract and options."""

    name: str
    function: JobFunction
    arguments: type[BaseModel]
    description: str
    options: JobOptions
    returns: TypeAdapter[Any] | None = None

    def resolved(self, settings: Settings) -> ResolvedOptions:
        """The one place a job's options meet the settings' defaults (worker, API views and aborts use it)."""
        options = self.options
        return ResolvedOptions(
            timeout_s=options.timeout_s or settings.job_timeout_seconds,
            max_tries=options.max_tries or settings.max_tries,
            keep_result_s=settings.keep_result_seconds if options.keep_result_s is None else options.keep_result_s,
            retry=options.retry
            or RetryPolicy(
                delay_s=settings.retry_delay_seconds,
                max_delay_s=settings.retry_max_delay_seconds,
                jitter=settings.retry_jitter,
            ),
        )

    def limits(self) -> Limits | None:
        """Its rate and concurrency limits, parsed (raises JobLimitsError, one line)."""
        return job_limits.parse(self.name, self.options.rate_limit, self.options.concurrency)

    def validate(self, kwargs: dict[str, Any]) -> BaseModel:
        """Validate keyword arguments against the signature; raises pydantic's ValidationError."""
        return self.arguments.model_validate(kwargs)

    def json_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments in their JSON form, ready for the wire."""
        return self.validate(kwargs).model_dump(mode="json")


class Job(Protocol[P, R_co]):
    """A function marked with `@job`: still the coroutine function, typed by its parameters after `ctx`, so a
    typed enqueue (`enqueue(send_welcome_email, email=..., name=...)`) is checked against its signature."""

    __name__: str

    def __call__(self, ctx: JobContext, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R_co]: ...


@dataclass(frozen=True)
class CronDeclaration:
    """What one `@cron` records; the schedule may depend on settings, and the kwargs and time zone are checked
    against the function, when a registry is built."""

    schedule: CronSchedule | None
    schedule_from: Callable[[Settings], CronSchedule] | None
    options: JobOptions
    run_at_startup: bool
    name: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    tz: str | None = None


@dataclass(frozen=True)
class CronSpec:
    """One schedule of a function: its own name (the key of its ticks, runs and pause state), the fields (wall
    clock of `tz`, UTC when None), and the kwargs each tick passes, already validated and in JSON form."""

    name: str
    function: JobFunction
    description: str
    schedule: CronSchedule
    options: JobOptions
    run_at_startup: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    tz: str | None = None
    arguments: type[BaseModel] | None = None

    @property
    def function_name(self) -> str:
        return self.function.__name__

    @property
    def zone(self) -> ZoneInfo | None:
        return None if self.tz is None else ZoneInfo(self.tz)

    def as_job(self) -> JobSpec:
        """The schedule as a job named like it, for enqueueing a run outside its ticks (run-now)."""
        arguments = self.arguments or arguments_model(self.function)
        return JobSpec(self.name, self.function, arguments, self.description, self.options)


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
    # NaN and infinities are refused in float fields, and kept as they are (not turned into null) in `Any` ones,
    # so the exact JSON encoder of the job's payload sees and refuses them, naming the field.
    config = ConfigDict(extra="forbid", allow_inf_nan=False, ser_json_inf_nan="constants")
    return create_model(model_name, __config__=config, **fields)


def result_contract(function: JobFunction) -> TypeAdapter[Any] | None:
    """The adapter that encodes the job's result, from its return annotation (None when it declares none)."""
    annotation = get_type_hints(function, include_extras=True).get("return")
    if annotation is None or annotation is Any or annotation is type(None):
        return None
    return TypeAdapter(annotation)


def _check_coroutine(function: JobFunction) -> None:
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"{function.__name__} must be an async def")


def _mark(function: JobFunction, options: JobOptions) -> None:
    _check_coroutine(function)
    arguments = arguments_model(function)
    unknown = [name for name in options.unique if name not in arguments.model_fields]
    if unknown:
        raise TypeError(f"{function.__name__}: unique names {unknown} that are not among its parameters")
    spec = JobSpec(function.__name__, function, arguments, _describe(function), options, result_contract(function))
    setattr(function, JOB_ATTRIBUTE, spec)


@overload
def job(function: Callable[Concatenate[JobContext, P], Awaitable[R]]) -> Job[P, R]: ...


@overload
def job(
    *,
    timeout: float | None = None,
    max_tries: int | None = None,
    keep_result: float | None = None,
    retry: RetryPolicy | None = None,
    rate_limit: str | None = None,
    concurrency: int | None = None,
    priority: Priority | None = None,
    unique: Iterable[str] = (),
) -> Callable[[Callable[Concatenate[JobContext, P], Awaitable[R]]], Job[P, R]]: ...


def job(
    function: Any = None,
    *,
    timeout: float | None = None,
    max_tries: int | None = None,
    keep_result: float | None = None,
    retry: RetryPolicy | None = None,
    rate_limit: str | None = None,
    concurrency: int | None = None,
    priority: Priority | None = None,
    unique: Iterable[str] = (),
) -> Any:
    """Mark a job function; usable as `@job` or `@job(timeout=30, max_tries=3, retry=RetryPolicy(...))`.
    `rate_limit="5/s"` and `concurrency=2` hold across all workers (core/job_limits.py), checked when a registry
    is built; `priority` is its jobs' priority when the enqueue names none (core/priority.py);
    `unique=("report_id",)`: one job per value of those arguments while one is queued or running; enqueueing
    another returns the existing one (core/unique.py)."""
    if priority is not None:
        check(priority)
    if isinstance(unique, str):
        unique = (unique,)
    options = JobOptions(
        timeout_s=timeout,
        max_tries=max_tries,
        keep_result_s=keep_result,
        retry=retry,
        rate_limit=rate_limit,
        concurrency=concurrency,
        priority=priority,
        unique=tuple(unique),
    )

    def mark(fn: JobFunction) -> JobFunction:
        _mark(fn, options)
        return fn

    return mark(function) if function is not None else mark


F = TypeVar("F", bound=JobFunction)


def cron(
    *,
    second: int | set[int] | None = 0,
    minute: int | set[int] | None = None,
    hour: int | set[int] | None = None,
    day: int | set[int] | None = None,
    month: int | set[int] | None = None,
    weekday: int | set[int] | None = None,
    schedule_from: Callable[[Settings], CronSchedule] | None = None,
    run_at_startup: bool = False,
    timeout: float | None = None,
    keep_result: float | None = None,
    name: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    tz: str | None = None,
) -> Callable[[F], F]:
    """Mark a job to run on a schedule (arq's cron fields; None means every). The fields are UTC, or wall-clock
    times of `tz` (a zoneinfo name such as "Europe/Paris"). `kwargs` are passed to each tick and checked against
    the function's signature when the registry is built. Stack several `@cron` on one function for several
    schedules, each with its own `name` (the function's name when there is one schedule). A schedule that
    depends on settings is given as `schedule_from=lambda settings: {...}` and resolved at start-up."""

    def mark(fn: F) -> F:
        _check_coroutine(fn)
        schedule = {"month": month, "day": day, "weekday": weekday, "hour": hour, "minute": minute, "second": second}
        options = JobOptions(timeout_s=timeout, max_tries=1, keep_result_s=keep_result)
        declaration = CronDeclaration(
            None if schedule_from else schedule,
            schedule_from,
            options,
            run_at_startup,
            name,
            dict(kwargs or {}),
            tz,
        )
        # Source order: the top decorator, applied last, comes first.
        setattr(fn, CRON_ATTRIBUTE, (declaration, *getattr(fn, CRON_ATTRIBUTE, ())))
        return fn

    return mark


def _cron_spec(function: JobFunction, declaration: CronDeclaration, settings: Settings | None) -> CronSpec:
    """One schedule, checked: its name, its time zone, and its kwargs against the function's signature."""
    name = declaration.name or function.__name__
    where = f"cron schedule {name!r} of {function.__name__}"
    if not CRON_NAME.fullmatch(name):
        raise CronScheduleError(f"{where}: a name is 1-100 letters, digits, '_', '.' or '-'")
    tz = declaration.tz
    if tz is not None:
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronScheduleError(f"{where}: unknown time zone {tz!r} (a zoneinfo name, e.g. Europe/Paris)") from None
        tz = None if zone.key == "UTC" else zone.key
    try:
        arguments = arguments_model(function)
    except TypeError as exc:
        raise CronScheduleError(f"{where}: {exc}") from None
    try:
        kwargs = arguments.model_validate(dict(declaration.kwargs)).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise CronScheduleError(f"{where}: kwargs do not fit its signature ({problems})") from None
    schedule = declaration.schedule
    if declaration.schedule_from is not None:
        schedule = declaration.schedule_from(settings or Settings())
    assert schedule is not None
    return CronSpec(
        name,
        function,
        _describe(function),
        schedule,
        declaration.options,
        declaration.run_at_startup,
        kwargs,
        tz,
        arguments,
    )


def every(seconds: int) -> set[int] | int:
    """Cron `second` (or `minute`) values for "every N": every(15) -> {0, 15, 30, 45}."""
    return set(range(0, 60, seconds)) if seconds < 60 else 0


def spec_of(function: JobFunction) -> JobSpec:
    """The contract of a function marked with `@job`."""
    spec: JobSpec | None = getattr(function, JOB_ATTRIBUTE, None)
    if spec is None:
        raise UnknownFunction(getattr(function, "__name__", repr(function)))
    return spec


@dataclass
class Registry:
    """Name -> job and cron specs, built from the job modules at start-up."""

    jobs: dict[str, JobSpec] = field(default_factory=dict)
    crons: dict[str, CronSpec] = field(default_factory=dict)

    def _check_new(self, name: str, function: JobFunction) -> None:
        existing = self.jobs.get(name) or self.crons.get(name)
        if existing is not None and existing.function is not function:
            raise ValueError(f"a job named {name!r} is already registered")

    def add(self, function: JobFunction, settings: Settings | None = None) -> None:
        """Register one marked function (a `@job`, or a `@cron` with each of its schedules)."""
        spec: JobSpec | None = getattr(function, JOB_ATTRIBUTE, None)
        declarations: tuple[CronDeclaration, ...] = getattr(function, CRON_ATTRIBUTE, ())
        if spec is not None and declarations:
            name = getattr(function, "__name__", repr(function))
            raise TypeError(f"{name} is marked both @job and @cron: a function is one or the other")
        if spec is not None:
            self._check_new(spec.name, function)
            spec.limits()  # a limit that cannot be enforced stops start-up here
            self.jobs[spec.name] = spec
        elif declarations:
            if len(declarations) > 1 and any(d.name is None for d in declarations):
                raise CronScheduleError(
                    f"{function.__name__} has {len(declarations)} cron schedules: give each one a name="
                )
            for declaration in declarations:
                self._add_cron(function, declaration, settings)
        else:
            raise TypeError(f"{getattr(function, '__name__', function)!r} is not marked with @job or @cron")

    def _add_cron(self, function: JobFunction, declaration: CronDeclaration, settings: Settings | None) -> None:
        cron_spec = _cron_spec(function, declaration, settings)
        self._check_new(cron_spec.name, function)
        existing = self.crons.get(cron_spec.name)
        if existing is not None:
            same = (existing.schedule, existing.kwargs, existing.tz) == (
                cron_spec.schedule,
                cron_spec.kwargs,
                cron_spec.tz,
            )
            if not same:  # the same function registered again (imported by two modules) is harmless
                raise CronScheduleError(f"two cron schedules of {function.__name__} are named {cron_spec.name!r}")
            return
        self.crons[cron_spec.name] = cron_spec

    def job(self, function: JobFunction | None = None, **options: Any) -> Any:
        """Mark and register in one step (tests and scripts; modules use the plain `@job`)."""

        def register(fn: JobFunction) -> JobFunction:
            if options or getattr(fn, JOB_ATTRIBUTE, None) is None:
                job(**options)(fn)
            self.add(fn)
            return fn

        return register(function) if function is not None else register

    def cron(self, **options: Any) -> Callable[[F], F]:
        """Mark and register one schedule (tests and scripts); only this schedule, not ones marked before."""

        def register(fn: F) -> F:
            if getattr(fn, JOB_ATTRIBUTE, None) is not None:
                raise TypeError(f"{fn.__name__} is marked both @job and @cron: a function is one or the other")
            cron(**options)(fn)
            self._add_cron(fn, getattr(fn, CRON_ATTRIBUTE)[0], None)
            return fn

        return register

    def add_module(self, module: ModuleType, settings: Settings | None = None, seen: set[str] | None = None) -> None:
        """Register every marked function of a module, and of its submodules it imports (a package)."""
        seen = set() if seen is None else seen
        if module.__name__ in seen:
            return
        seen.add(module.__name__)
        for value in list(vars(module).values()):
            if isinstance(value, ModuleType):
                if value.__name__.startswith(module.__name__ + "."):
                    self.add_module(value, settings, seen)
            elif callable(value) and (hasattr(value, JOB_ATTRIBUTE) or hasattr(value, CRON_ATTRIBUTE)):
                self.add(value, settings)

    @classmethod
    def build(cls, modules: Iterable[str], settings: Settings | None = None) -> Registry:
        """Import the job modules and register what they mark."""
        registry = cls()
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise JobModulesError(f"cannot import {name!r} ({exc})") from None
            registry.add_module(module, settings)
        return registry

    def get(self, name: str) -> JobSpec:
        try:
            return self.jobs[name]
        except KeyError:
            raise UnknownFunction(name) from None

    def spec_of(self, function: JobFunction) -> JobSpec:
        return self.get(spec_of(function).name)

    def replace_job(self, name: str, **changes: Any) -> None:
        """A copy of one job's spec with some fields changed (tests tune options this way)."""
        self.jobs[name] = replace(self.jobs[name], **changes)


def load_job_modules(modules: Iterable[str], settings: Settings | None = None) -> Registry:
    """The registry of these modules (kept for callers of the old name)."""
    return Registry.build(modules, settings)


def load_registry(settings: Settings) -> Registry:
    """The registry of JOB_MODULES; a module that cannot be imported is a one-line settings error."""
    from settings import SettingsError

    try:
        return Registry.build(settings.job_modules, settings)
    except JobModulesError as exc:
        raise SettingsError(f"invalid setting JOB_MODULES: {exc}") from None
    except (CronScheduleError, JobLimitsError) as exc:
        raise SettingsError(f"invalid {exc}") from None
