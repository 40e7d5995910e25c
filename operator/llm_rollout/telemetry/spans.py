"""Spans recorded as plain data, finished into the SDK's `ReadableSpan` for its processors.

The SDK's `Span` validates every attribute and takes a lock on each change: ~40 µs a span
with the router's ~25 attributes, measured (bench/tracing_cost.py). Here a span is a dict
until it ends, ~4 µs. Sampling (the provider's sampler), ids (its id generator), resource
and processors stay the SDK's. Callers pass only OpenTelemetry attribute types (str, bool,
int, float, and sequences of one of them): nothing checks it again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


class RecordedSpan:
    """One span in the making. Not sampled: its context only (it propagates, records nothing)."""

    __slots__ = (
        "_recorder",
        "attributes",
        "context",
        "ended",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "recording",
        "start_time",
        "status",
    )

    def __init__(
        self,
        recorder: SpanRecorder,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
        recording: bool,
    ) -> None:
        self._recorder = recorder
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.recording = recording
        self.events: list[Event] = []
        self.status = Status(StatusCode.UNSET)
        self.start_time = time.time_ns()
        self.ended = False

    def set(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def update(self, attributes: Mapping[str, Any]) -> None:
        self.attributes.update(attributes)

    def add_event(self, name: str, attributes: Mapping[str, Any]) -> None:
        if self.recording:
            self.events.append(Event(name, dict(attributes), time.time_ns()))

    def set_error(self, description: str) -> None:
        self.status = Status(StatusCode.ERROR, description)

    def end(self) -> None:
        """Hand the span to the processors (once; an unsampled span goes nowhere)."""
        if self.ended:
            return
        self.ended = True
        if self.recording:
            self._recorder.finish(self)


class SpanRecorder:
    """Starts `RecordedSpan`s with a provider's sampler and ids, ends them into its
    span processors (the provider's active processor: every one added to it)."""

    def __init__(self, provider: TracerProvider, scope_name: str) -> None:
        self.provider = provider
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self._resource = provider.resource
        self._processor = provider._active_span_processor  # the SDK's fan-out to processors
        self._scope = InstrumentationScope(scope_name)

    def start(
        self,
        name: str,
        *,
        context: Context | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] = (),
    ) -> RecordedSpan:
        parent_ctx = trace.get_current_span(context).get_span_context() if context else None
        parent = parent_ctx if parent_ctx is not None and parent_ctx.is_valid else None
        trace_id = parent.trace_id if parent is not None else self._ids.generate_trace_id()
        decision = self._sampler.should_sample(
            context, trace_id, name, kind, attributes, links
        ).decision
        sampled = decision is Decision.RECORD_AND_SAMPLE
        ctx = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED if sampled else _NOT_SAMPLED,
            trace_state=parent.trace_state if parent is not None else None,
        )
        return RecordedSpan(self, name, ctx, parent, kind, dict(attributes or {}), links, sampled)

    def finish(self, span: RecordedSpan) -> None:
        self._processor.on_end(
            ReadableSpan(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=self._resource,
                attributes=span.attributes,
                events=span.events,
                links=span.links,
                kind=span.kind,
                status=span.status,
                start_time=span.start_time,
                end_time=time.time_ns(),
                instrumentation_scope=self._scope,
            )
        )


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class SpanRecord:
    """A finished span as plain data, with ids of its own (W3C integers): for spans built
    after the fact, from times and ids their builder derives."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int | None
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    events: Sequence[SpanEvent] = ()
    error: str | None = None  # the status description when the span is an error
    links: Sequence[tuple[int, int]] = ()  # (trace id, span id) of related spans
    kind: SpanKind = SpanKind.INTERNAL


class RecordSink:
    """Hands `SpanRecord`s to a provider's span processors. Its sampler decides per trace
    id (a trace-id ratio: every span of a trace goes, or none)."""

    def __init__(self, provider: TracerProvider, scope_name: str) -> None:
        self.provider = provider
        self._sampler = provider.sampler
        self._resource = provider.resource
        self._processor = provider._active_span_processor
        self._scope = InstrumentationScope(scope_name)

    def sampled(self, trace_id: int) -> bool:
        decision = self._sampler.should_sample(None, trace_id, "").decision
        return decision is Decision.RECORD_AND_SAMPLE

    def send(self, records: Iterable[SpanRecord]) -> None:
        for record in records:
            if self.sampled(record.trace_id):
                self._processor.on_end(readable_span(record, self._resource, self._scope))

    def shutdown(self) -> None:
        self.provider.shutdown()


def readable_span(
    record: SpanRecord, resource: Resource, scope: InstrumentationScope
) -> ReadableSpan:
    def ctx(trace_id: int, span_id: int, remote: bool) -> SpanContext:
        return SpanContext(trace_id, span_id, is_remote=remote, trace_flags=_SAMPLED)

    parent = record.parent_span_id
    return ReadableSpan(
        name=record.name,
        context=ctx(record.trace_id, record.span_id, False),
        parent=ctx(record.trace_id, parent, True) if parent is not None else None,
        resource=resource,
        attributes=dict(record.attributes),
        events=[Event(e.name, dict(e.attributes), e.time_ns) for e in record.events],
        links=[Link(ctx(t, s, True)) for t, s in record.links],
        kind=record.kind,
        status=Status(StatusCode.ERROR, record.error)
        if record.error is not None
        else Status(StatusCode.UNSET),
        start_time=record.start_ns,
        end_time=record.end_ns,
        instrumentation_scope=scope,
    )
