"""Traces (OpenTelemetry, the optional ``postgit-core[otel]`` extra): a span per step attempt, a trace per instance.

An instance's steps share one trace. When the request that started it carried a W3C ``traceparent``, that is stored
with the instance and every step's span is its child, in the caller's trace; otherwise the trace's id is the
instance's id (a UUID is 128 bits, like a trace id), so one instance is one trace whichever workers run it.

Without the extra, or without a configured tracer provider, nothing here runs per step: :func:`engine_tracer` is
None and the engine checks only that.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from postgit.errors import PostgitError

try:
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
except ImportError:  # the extra is not installed
    otel_trace = None  # type: ignore[assignment]

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[\x21-\x7e]*)?$"
"""A W3C trace-context ``traceparent`` header (version 00, or a later version's longer form)."""
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
"""The entry-point group OpenTelemetry's exporters register under (``console`` by the SDK, ``otlp`` by the
``opentelemetry-exporter-otlp`` packages)."""


def valid_traceparent(value: str | None) -> str | None:
    """The version-00 ``traceparent`` that ``value`` carries, or None when it carries none the W3C spec accepts."""
    if not value or not _TRACEPARENT.match(value):
        return None
    version, trace_id, span_id, flags = value[:55].split("-")
    if version == "ff" or (version == "00" and len(value) != 55) or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return f"00-{trace_id}-{span_id}-{flags}"


def available() -> bool:
    """Whether OpenTelemetry's API is installed."""
    return otel_trace is not None


def configure(exporters: Sequence[str], service_name: str | None) -> Any:
    """Install an SDK tracer provider exporting to ``exporters`` (names, e.g. ``otlp``, ``console``); returns it.

    ``service_name``: the ``service.name`` resource attribute unless ``OTEL_SERVICE_NAME`` set one (the SDK reads
    that and ``OTEL_RESOURCE_ATTRIBUTES`` itself).

    Raises:
        PostgitError: the extra is not installed, or no installed package provides an exporter named so.
    """
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise PostgitError(
            "OTEL_TRACES_EXPORTER is set but OpenTelemetry is not installed: pip install 'postgit-core[otel]'"
        ) from None
    assert otel_trace is not None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name} if service_name else {}))
    for name in exporters:
        found = entry_points(group=_EXPORTER_GROUP, name=name)
        if not found:
            raise PostgitError(
                f"OTEL_TRACES_EXPORTER={name!r}: no installed package provides that exporter "
                "(otlp comes with opentelemetry-exporter-otlp; console with the SDK)"
            )
        exporter_class = next(iter(found)).load()
        provider.add_span_processor(BatchSpanProcessor(exporter_class()))
    otel_trace.set_tracer_provider(provider)
    return provider


def engine_tracer(provider: Any = None) -> Any:
    """The tracer step spans come from: ``provider``'s, else the global provider's; None when nothing records."""
    if otel_trace is None:
        return None
    provider = provider if provider is not None else otel_trace.get_tracer_provider()
    if isinstance(provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        return None  # no SDK configured: spans would go nowhere
    return provider.get_tracer("postgit")


@dataclass(frozen=True, slots=True)
class InstanceTrace:
    """What every span of one instance's steps shares."""

    instance_id: str
    workflow: str
    version: int
    parent: Any
    """The OpenTelemetry context the step spans are children of."""


def instance_trace(instance_id: uuid.UUID, workflow: str, version: int, traceparent: str | None) -> InstanceTrace:
    """The trace of an instance: under its start request's ``traceparent``, else in the trace named by its id."""
    assert otel_trace is not None
    parsed = valid_traceparent(traceparent)
    if parsed is not None:
        _, trace_id, span_id, flags = parsed.split("-")
        span = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16)))
    else:
        span_id = (instance_id.int & 0xFFFF_FFFF_FFFF_FFFF) or 1
        span = SpanContext(instance_id.int, span_id, True, TraceFlags(TraceFlags.SAMPLED))
    parent = otel_trace.set_span_in_context(NonRecordingSpan(span))
    return InstanceTrace(str(instance_id), workflow, version, parent)


@dataclass(slots=True)
class StepSpan:
    """A step attempt's span while it runs: its ``traceparent``, and where its outcome is recorded."""

    span: Any

    @property
    def traceparent(self) -> str:
        context = self.span.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    def outcome(self, status: str, retrying: bool, error: dict[str, Any] | None) -> None:
        """Record how the attempt ended: ``completed``, ``suspended``, ``failed`` (``retrying`` or for good)."""
        outcome = "retrying" if status == "failed" and retrying else status
        self.span.set_attribute("postgit.outcome", outcome)
        if status == "failed":
            self.span.set_status(Status(StatusCode.ERROR, str((error or {}).get("message", ""))[:1000]))


@contextmanager
def step_span(
    tracer: Any, trace: InstanceTrace, node_id: str, node_type: str, run_key: str, attempt: int
) -> Iterator[StepSpan]:
    """A span for one step attempt, current while it runs, ended on exit."""
    attributes = {
        "postgit.instance.id": trace.instance_id,
        "postgit.workflow": trace.workflow,
        "postgit.workflow.version": trace.version,
        "postgit.node.id": node_id,
        "postgit.node.type": node_type,
        "postgit.run": run_key,
        "postgit.attempt": attempt,
    }
    with tracer.start_as_current_span(
        f"{node_type} {node_id}", context=trace.parent, attributes=attributes, record_exception=False
    ) as span:
        yield StepSpan(span)
