"""The hand-written OTLP encoder decodes to exactly the SDK encoder's message, and the span
recorder samples, links and parents like the SDK's tracer."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from llm_rollout.telemetry.otlp import SpanEncoder
from llm_rollout.telemetry.spans import SpanRecorder


def provider(ratio: float = 1.0, **resource: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    p = TracerProvider(
        resource=Resource.create({"service.name": "t", **resource}),
        sampler=ParentBased(TraceIdRatioBased(ratio)),
    )
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p, exporter


ATTRS = {
    "s": "text",
    "unicode": "Grüße, 日本",
    "empty": "",
    "long": "x" * 1000,
    "t": True,
    "f": False,
    "i": 7,
    "neg": -3,
    "big": 2**62,
    "d": 0.25,
    "strs": ("stop", "length"),
    "ints": (1, 2, 3),
}


def test_the_encoding_decodes_to_the_sdk_encoders_message() -> None:
    p, exporter = provider(region="eu")
    sdk_tracer = p.get_tracer("scope-a", "1.0")
    recorder = SpanRecorder(p, "scope-b")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1")]),
    )
    for i in range(3):
        parent = sdk_tracer.start_span("root", kind=SpanKind.SERVER, attributes=ATTRS)
        # The same key and value as a span attribute: the encoder's cache must not mix them.
        parent.add_event("gen_ai.evaluation.result", {"s": "text", "d": 0.25})
        parent.set_status(Status(StatusCode.ERROR, "502") if i else Status(StatusCode.OK))
        parent.end()
        child = sdk_tracer.start_span(
            "child",
            context=trace.set_span_in_context(parent),
            links=[Link(remote, {"why": "rates"})],
        )
        child.end()
        recorded = recorder.start(
            "chat m",
            context=trace.set_span_in_context(trace.NonRecordingSpan(remote)),
            kind=SpanKind.CLIENT,
            attributes=ATTRS,
        )
        recorded.add_event("e", {"k": "v"})
        recorded.set_error("timeout")
        recorded.end()
    spans = exporter.get_finished_spans()
    assert len(spans) == 9
    encoder = SpanEncoder()
    for _ in range(2):  # the second time from the encoder's caches
        ours = ExportTraceServiceRequest.FromString(encoder.request(spans))
        assert ours == encode_spans(spans)


def test_recorded_spans_follow_the_parent_and_the_ratio() -> None:
    p, exporter = provider(ratio=0.0)
    recorder = SpanRecorder(p, "r")
    root = recorder.start("root", context=None, kind=SpanKind.CLIENT)
    assert not root.recording and not root.context.trace_flags.sampled
    root.set("a", 1)
    root.end()
    assert exporter.get_finished_spans() == ()
    # A sampled parent is followed even at ratio 0; its trace and state are kept.
    parent = SpanContext(
        5, 6, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")])
    )
    child = recorder.start(
        "child",
        context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
        kind=SpanKind.CLIENT,
    )
    assert child.recording and child.context.trace_id == 5
    assert child.context.trace_state.get("k") == "v"
    child.end()
    child.end()  # once only
    [span] = exporter.get_finished_spans()
    assert span.parent == parent and span.name == "child"
