"""OpenTelemetry, when it is installed (`opentelemetry-api`; an optional dependency): each try of a job runs in a
span that is a child of the enqueueing request's span, from the W3C `traceparent` stored with the job. Without
it, these are no-ops that cost one `None` check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the optional dependency is absent
    trace = None  # type: ignore[assignment]

TRACER_NAME = "job-platform"
_PROPAGATOR: Any = TraceContextTextMapPropagator() if trace is not None else None


def current_traceparent() -> str | None:
    """The current span's context as a `traceparent`, when OpenTelemetry is installed and a span is current."""
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def job_span(function: str, job_id: str, job_try: int, traceparent: str | None) -> Iterator[None]:
    """The span of one try, a child of `traceparent`'s span (or a root when the job carries none)."""
    if trace is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        yield  # the API alone, no SDK configured: every span would be a no-op, so make none
        return
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    tracer = trace.get_tracer(TRACER_NAME)
    attributes: dict[str, str | int] = {"job.id": job_id, "job.function": function, "job.try": job_try}
    with tracer.start_as_current_span(
        f"job {function}", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ):
        yield
