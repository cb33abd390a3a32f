"""OpenTelemetry, when it is installed (`opentelemetry-api`; an optional dependency): each try of a job runs in a
span that is a child of the enqueueing request's span, from the W3C `traceparent` stored with the job. Without
it, these are no-ops that cost one `None` check."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the optional dependency is absent
    trace = None  # type: ignore[assignment]
    otel_context = None  # type: ignore[assignment]

TRACER_NAME = "job-platform"
_PROPAGATOR: Any = TraceContextTextMapPropagator() if trace is not None else None
_UNCONFIGURED: tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider) if trace is not None else ()
_NO_SPAN = nullcontext()


def current_traceparent() -> str | None:
    """The current span's context as a `traceparent`, when OpenTelemetry is installed and a span is current."""
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def job_span(function: str, job_id: str, job_try: int, traceparent: str | None) -> AbstractContextManager[object]:
    """The span of one try, a child of `traceparent`'s span (or a root when the job carries none). With no SDK
    configured (the API alone installed) every span would be a no-op, so none is made: one check per try."""
    if trace is None:
        return _NO_SPAN
    provider = trace.get_tracer_provider()
    if isinstance(provider, _UNCONFIGURED):
        return _NO_SPAN
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    attributes: dict[str, str | int] = {"job.id": job_id, "job.function": function, "job.try": job_try}
    return _JobSpan(provider.get_tracer(TRACER_NAME), f"job {function}", parent, attributes)


class _JobSpan:
    """The try's span, current while the try runs. A class, not OpenTelemetry's generator-based
    `start_as_current_span`: an exception passing through a generator gets its frames in the job's traceback,
    and OpenTelemetry's `record_exception` calls `str()` on it, which a job's own exception may fail."""

    def __init__(self, tracer: Any, name: str, parent: Any, attributes: dict[str, str | int]) -> None:
        self.tracer, self.name, self.parent, self.attributes = tracer, name, parent, attributes
        self.span: Any = None
        self.token: Any = None

    def __enter__(self) -> object:
        assert trace is not None
        self.span = self.tracer.start_span(
            self.name, context=self.parent, kind=trace.SpanKind.CONSUMER, attributes=self.attributes
        )
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        assert trace is not None
        try:
            if error is not None:
                try:
                    message = str(error)
                except Exception:
                    message = f"<str() of the {type(error).__name__} raised>"
                self.span.add_event(
                    "exception", {"exception.type": type(error).__qualname__, "exception.message": message}
                )
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
        finally:
            otel_context.detach(self.token)
            self.span.end()
