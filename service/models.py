"""HTTP models; each name says its direction (Request in, View/Accepted out)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from core import keys
from core.attempts import Attempt
from core.codec import ErrorKind
from core.job_index import JobSummary, SearchStatus
from core.priority import Priority
from core.progress import Progress
from core.status import JobFailure, JobRecord, JobState

MAX_DEFER_S = 366 * 86_400
# ISO-8601 date and time, years 1970 to 2999, as a pattern the OpenAPI document publishes and the API
# enforces; the offset is optional (UTC when absent). February 29 is left out: not every year has one.
ISO_DATETIME = re.compile(
    r"^(19[7-9]\d|2\d{3})-"
    r"((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))"
    r"[Tt ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?$"
)


def _date_time_pattern(schema: dict[str, Any]) -> None:
    """The pattern says it all (and more exactly than `format: date-time`, which demands an offset)."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option.pop("format", None)
            option["pattern"] = ISO_DATETIME.pattern


class ThenRequest(BaseModel):
    """A job to run after its parent succeeds, given the parent's result as `result_arg`."""

    model_config = ConfigDict(extra="forbid")

    function: str = Field(min_length=1, description="A name from `GET /v1/functions`.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Its other arguments, validated against its signature minus `result_arg`."
    )
    result_arg: str = Field(min_length=1, max_length=200, description="The argument that receives the result.")
    then: list[ThenRequest] = Field(
        default_factory=list, max_length=100, description="Jobs to run after this one succeeds, the same way."
    )


def _not_reserved_schema(schema: dict[str, Any]) -> None:
    """The published schema refuses the platform's own ids as the API does (`_not_reserved`)."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["not"] = {"pattern": "^" + re.escape(keys.PLATFORM_JOB_ID_PREFIX)}


class EnqueueRequest(BaseModel):
    """A job to run: a registered function and its keyword arguments, now or later."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": {"required": ["defer_by", "defer_until"]}})

    function: str = Field(min_length=1, description="A name from `GET /v1/functions`.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments, validated against the signature.")
    job_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:@-]+$",
        json_schema_extra=_not_reserved_schema,
        description="Your own id, to make the enqueue idempotent (409 if it exists). Ids starting with `platform:` "
        "are the platform's own (cron ticks, fan-out children) and refused.",
    )
    defer_by: float | None = Field(
        None,
        ge=0,
        le=MAX_DEFER_S,
        strict=True,
        allow_inf_nan=False,
        description="Run no earlier than N seconds from now.",
    )
    defer_until: datetime | None = Field(
        None,
        json_schema_extra=_date_time_pattern,
        description="Run no earlier than this ISO-8601 time (UTC when no offset; years 1970 to 2999); "
        "a past time means now.",
    )
    priority: Priority | None = Field(
        None,
        description="`high` starts before every waiting default job; `low` runs when workers have nothing else "
        "due, or once it has waited 60 s. Default: the function's own priority, else `default`.",
    )
    then: list[ThenRequest] = Field(
        default_factory=list,
        max_length=100,
        description="Jobs to run after this one succeeds, each given its result as `result_arg` (a chain; at most "
        "100 chained jobs in all). If it fails for good, dies or is aborted, they end as `not_run`.",
    )

    @field_validator("job_id")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value is not None and keys.is_platform_job_id(value):
            raise ValueError(
                f"ids starting with {keys.PLATFORM_JOB_ID_PREFIX!r} are reserved for the platform's own jobs"
            )
        return value

    @field_validator("defer_until", mode="before")
    @classmethod
    def _iso_string(cls, value: object) -> object:
        """Only an ISO-8601 date and time: pydantic would also read a number as a Unix time, or a bare date."""
        if value is not None and not (isinstance(value, str) and ISO_DATETIME.match(value)):
            raise ValueError("must be an ISO-8601 date and time from 1970 to 2999, e.g. 2026-01-31T12:00:00Z")
        return value

    @field_validator("defer_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """Naive means UTC. The pattern keeps the year within 1970..2999, so conversion never overflows."""
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_deferral(cls, data: object) -> object:
        """Both keys present is an error even if one is null, as the published schema says."""
        if isinstance(data, dict) and "defer_by" in data and "defer_until" in data:
            raise ValueError("give defer_by or defer_until, not both")
        return data


class BatchEnqueueRequest(BaseModel):
    """Up to 1,000 jobs, validated together and written in one round trip."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[EnqueueRequest] = Field(min_length=1, max_length=1000)


class ChainLinkView(BaseModel):
    """A job chained after another: it runs when its parent succeeds, given the result as `result_arg`."""

    job_id: str
    function: str
    result_arg: str
    children: list[ChainLinkView] = Field(default_factory=list, description="Jobs chained after this one.")


# Chain and unique-job fields are left out of an answer unless set: a job using neither answers as before.
WORKFLOW_FIELDS = ("existing", "children", "parent", "result_arg", "reason", "unique_key")


class WithoutUnsetWorkflow(BaseModel):
    @model_serializer(mode="wrap")
    def _without_unset_workflow(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation: pydantic then publishes the model's own schema for what this returns.
        data = handler(self)
        if isinstance(data, dict):
            for name in WORKFLOW_FIELDS:
                if name in data and data[name] in (None, False, []):
                    del data[name]
        return data


class JobAccepted(WithoutUnsetWorkflow):
    job_id: str
    function: str
    status: JobState
    enqueued_at: datetime
    scheduled_at: datetime
    existing: bool = Field(
        False,
        description="A unique job's duplicate (answered 200, not 202): this is the queued or running job that holds "
        "its uniqueness key, and nothing new was enqueued.",
    )
    children: list[ChainLinkView] = Field(default_factory=list, description="The jobs chained after it, with ids.")


class BatchAccepted(BaseModel):
    accepted: list[JobAccepted]
    duplicates: list[str] = Field(description="Ids that already existed; those jobs were not enqueued again.")


ERROR_KINDS = ", ".join(f"`{kind.value}`" for kind in ErrorKind)


def _time(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


class ProblemView(BaseModel):
    """One problem with a request: where (`loc`, e.g. `["body", "kwargs", "email"]`), what, and its kind."""

    loc: list[str | int] = Field(description="Where the problem is; empty when it is the request as a whole.")
    msg: str = Field(description="What is wrong; quotes at most a short prefix of the input.")
    type: str = Field(description="A stable machine-readable kind, e.g. `missing`, `unauthorized`, `not_found`.")


class ErrorBody(BaseModel):
    """Every error answer (4xx and 5xx) has this one shape."""

    detail: list[ProblemView]


class ErrorView(BaseModel):
    """Why a job failed. `kind` is the platform's own stable word for it; `type` is the exception's class name
    (or the platform's name for a failure it decided, e.g. `JobTimeout`)."""

    kind: str = Field(description=f"One of {ERROR_KINDS}.")
    type: str
    message: str
    traceback: str | None = Field(None, description="The end of the traceback, when the job raised.")

    @classmethod
    def of(cls, failure: JobFailure) -> ErrorView:
        return cls(kind=failure.kind, type=failure.type, message=failure.message, traceback=failure.traceback)


class ProgressView(BaseModel):
    done: int | float
    total: int | float | None = None
    percent: float | None = None
    message: str = ""
    updated_at: datetime | None = None

    @classmethod
    def of(cls, progress: Progress) -> ProgressView:
        return cls(
            done=progress.done,
            total=progress.total,
            percent=progress.percent,
            message=progress.message,
            updated_at=_time(progress.updated_at),
        )


class AttemptView(BaseModel):
    """One failed try of a job."""

    try_: int = Field(alias="try", serialization_alias="try")
    at: datetime | None = Field(description="When the try failed; null when its worker stopped mid-try.")
    kind: str = Field(description=f"One of {ERROR_KINDS}.")
    error_type: str
    message: str
    traceback: str | None = None
    duration_s: float | None = None
    retry_in_s: float | None = Field(None, description="Delay before the next try; null when it gave up.")

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(cls, entry: Attempt) -> AttemptView:
        return cls(
            try_=entry.try_,
            at=_time(entry.at),
            kind=entry.kind,
            error_type=entry.error_type,
            message=entry.message,
            traceback=entry.traceback,
            duration_s=entry.duration_s,
            retry_in_s=entry.retry_in_s,
        )


class JobView(WithoutUnsetWorkflow):  # type: ignore[no-redef]  # pydantic's mypy plugin trips on a field named kwargs
    job_id: str
    function: str | None
    kwargs: dict[str, Any]
    status: JobState
    tries: int = Field(description="How many times a worker has started this job.")
    enqueued_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    progress: ProgressView | None
    result: Any = None
    error: ErrorView | None = None
    attempts: list[AttemptView] = Field(default_factory=list, description="Failed tries, oldest first.")
    priority: Priority | None = Field(None, description="`high`, `default` or `low`, while it waits or runs.")
    waiting_on: Literal["rate_limit", "concurrency"] | None = Field(
        None, description="A queued job held back by its function's limit (`rate_limit` or `concurrency`)."
    )
    parent: str | None = Field(None, description="The job this one is chained after (it runs when that succeeds).")
    result_arg: str | None = Field(None, description="Of a chained job: the argument given its parent's result.")
    children: list[ChainLinkView] = Field(default_factory=list, description="The jobs chained after this one.")
    reason: str | None = Field(None, description="Why a `not_run` job did not run (its parent's end).")
    unique_key: str | None = Field(
        None,
        description="Of a unique job (`@job(unique=...)`) while queued or running: the uniqueness key it holds; "
        "enqueueing another with the same arguments answers with this job.",
    )

    @classmethod
    def of(cls, record: JobRecord) -> JobView:
        return cls(
            job_id=record.job_id,
            function=record.function,
            kwargs=record.kwargs,
            status=record.status,
            tries=record.tries,
            enqueued_at=record.enqueued_at,
            scheduled_at=record.scheduled_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            progress=ProgressView.of(record.progress) if record.progress else None,
            result=record.result,
            error=ErrorView.of(record.error) if record.error else None,
            attempts=[AttemptView.of(entry) for entry in record.attempts],
            priority=record.priority,
            waiting_on=record.waiting_on,
            parent=record.parent,
            result_arg=record.result_arg,
            children=[
                ChainLinkView(job_id=link.job_id, function=link.function, result_arg=link.result_arg)
                for link in record.children
            ],
            reason=record.reason,
            unique_key=record.unique_key,
        )


class JobOutcome(BaseModel):
    """A job's outcome; `result` or `error` is set once `status` is complete, failed or aborted."""

    job_id: str
    status: JobState
    finished: bool
    result: Any = None
    error: ErrorView | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, record: JobRecord) -> JobOutcome:
        view = JobView.of(record)
        return cls(
            job_id=view.job_id,
            status=view.status,
            finished=view.status.finished,
            result=view.result,
            error=view.error,
            finished_at=view.finished_at,
        )


class FunctionOptionsView(BaseModel):
    timeout_s: float
    max_tries: int
    keep_result_s: float


class FunctionView(BaseModel):
    name: str
    description: str
    arguments_schema: dict[str, Any]
    options: FunctionOptionsView


class CronRunView(BaseModel):
    job_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status: str | None = None
    duration_s: float | None = None
    error: str | None = None
    runs: int = 0


class CronView(BaseModel):  # type: ignore[no-redef]  # see JobView
    name: str = Field(description="The schedule's name: the key of its ticks, runs and pause state.")
    function: str = Field(description="The function each tick runs.")
    description: str
    schedule: dict[str, Any] = Field(description="arq's cron fields, as wall-clock times of `tz`.")
    tz: str = Field(description="The time zone the fields are read in (a zoneinfo name; `UTC` by default).")
    kwargs: dict[str, Any] = Field(description="The arguments each tick (and each run-now) passes.")
    paused: bool = Field(False, description="A paused schedule's ticks are not enqueued (nor counted as missed).")
    paused_at: datetime | None = None
    next_run: datetime | None = Field(description="The next tick, in UTC; null while paused.")
    last_run: CronRunView | None
    missed_runs: int = Field(
        0,
        description="Ticks that came due and never ran, for any reason (no worker was up, the tick was aborted or "
        "its job id taken), counted over the last 200 ticks recorded as run and every tick since.",
    )
    last_missed_at: datetime | None = Field(None, description="The latest of those ticks.")


class QueueView(BaseModel):
    name: str
    queued: int
    deferred: int
    in_progress: int
    workers: int
    oldest_waiting_age_s: float | None = Field(
        None, description="How long the oldest job due and not yet started has been waiting; null when none is."
    )
    finished_last_minute: int = Field(0, description="Jobs its workers ended (any outcome) in the last minute.")
    finished_last_hour: int = Field(0, description="Jobs its workers ended (any outcome) in the last hour.")


class JobSummaryView(BaseModel):
    """One job in a search: what it is and where it stands, without its arguments or result."""

    job_id: str
    function: str
    status: SearchStatus
    enqueued_at: datetime | None = Field(description="null when its history no longer goes back that far.")
    scheduled_at: datetime | None = Field(description="When a queued or deferred job is (or was) due.")
    started_at: datetime | None = Field(description="When a running job's current try started.")
    finished_at: datetime | None

    @classmethod
    def of(cls, summary: JobSummary) -> JobSummaryView:
        return cls(**asdict(summary))


class JobCounts(BaseModel):
    status: dict[str, int] = Field(description="Jobs per status, over every function.")
    function: dict[str, int] = Field(description="Jobs per function, over every status.")


class JobPage(BaseModel):
    items: list[JobSummaryView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")
    counts: JobCounts


class WorkerJobsView(BaseModel):
    complete: int
    failed: int
    retried: int
    ongoing: int


class WorkerView(BaseModel):
    worker_id: str
    host: str
    pid: int
    queue: str
    started_at: datetime
    last_seen: datetime
    jobs: WorkerJobsView


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: str
    workers: int


class DeadLetterView(BaseModel):  # type: ignore[no-redef]  # see JobView
    """A job that failed for good, with everything needed to requeue it."""

    job_id: str
    function: str | None
    kwargs: dict[str, Any]
    tries: int
    reason: str
    error: ErrorView
    queue: str
    failed_at: datetime
    attempts: list[AttemptView]
    requeueable: bool


class DeadLetterPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[DeadLetterView]


class RequeueByIds(BaseModel):
    """Requeue these dead jobs."""

    model_config = ConfigDict(extra="forbid")

    job_ids: list[str] = Field(min_length=1, max_length=10_000)


class RequeueByFunction(BaseModel):
    """Requeue every dead job of one function."""

    model_config = ConfigDict(extra="forbid")

    function: str = Field(min_length=1)


class RequeueOutcome(BaseModel):
    requeued: list[str]
    not_found: list[str]
    not_requeued: dict[str, str] = Field(description="job_id -> why it was not requeued")


class Deleted(BaseModel):
    deleted: int
