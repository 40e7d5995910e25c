"""The trace exporter's settings and its dropping batch processor, the GenAI content policy,
trace references and the request/response metadata the router's spans record."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from llm_rollout.api.spec import TracingSpec
from llm_rollout.router.extract import RequestMeta, ResponseMeta, request_meta, response_meta
from llm_rollout.router.tracing import parse_trace_ref, trace_ref
from llm_rollout.telemetry.export import ExportSettings, tracer_provider
from llm_rollout.telemetry.genai import ContentPolicy, compile_redactions, operation_of


class Counts(dict[str, int]):
    def __call__(self, outcome: str, n: int) -> None:
        self[outcome] = self.get(outcome, 0) + n


def test_settings_from_the_standard_environment() -> None:
    assert ExportSettings.from_env({}, service_name="r") is None
    s = ExportSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_SERVICE_NAME": "team-router",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
        service_name="r",
    )
    assert s is not None
    assert s.endpoint == "http://collector:4318/v1/traces"
    assert (s.sample_ratio, s.service_name) == (0.25, "team-router")
    assert (s.queue_size, s.batch_size, s.schedule_delay) == (100, 10, 0.2)
    # The signal-specific variable is used as is; flags win over the environment.
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
    }
    s = ExportSettings.from_env(env, service_name="r", sample_ratio=1.0)
    assert s is not None and (s.endpoint, s.sample_ratio) == ("http://t:4318/custom", 1.0)
    flag = ExportSettings.from_env(env, service_name="r", endpoint="http://flag:4318/v1/traces")
    assert flag is not None and flag.endpoint == "http://flag:4318/v1/traces"
    assert ExportSettings.from_env({**env, "OTEL_SDK_DISABLED": "true"}, service_name="r") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "not an http"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_SAMPLER_ARG": "2"}, "ratio"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "sizes"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExportSettings.from_env(env, service_name="r")


def _spans(provider_exporter: SpanExporter, counts: Counts, n: int, **kw: int) -> None:
    settings = ExportSettings("http://unused", "t", **kw)  # type: ignore[arg-type]
    provider = tracer_provider(settings, counts, exporter=provider_exporter)
    tracer = provider.get_tracer("t")
    for i in range(n):
        tracer.start_span(f"s{i}").end()
    provider.force_flush()
    provider.shutdown()


def test_every_sampled_span_is_exported_and_counted() -> None:
    exporter, counts = InMemorySpanExporter(), Counts()
    _spans(exporter, counts, 1000, batch_size=64)
    assert len(exporter.get_finished_spans()) == 1000
    assert counts == {"exported": 1000}


class StalledBackend(SpanExporter):
    """Fault injection: an export that hangs until released (a backend that stopped
    answering), then refuses. A real collector does not stall on demand."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.release.wait(10)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.release.set()


def test_a_stalled_backend_drops_and_counts_and_never_blocks_the_caller() -> None:
    backend, counts = StalledBackend(), Counts()
    settings = ExportSettings(
        "http://unused", "t", queue_size=50, batch_size=10, schedule_delay=10.0
    )
    provider = tracer_provider(settings, counts, exporter=backend)
    tracer = provider.get_tracer("t")
    # A full batch wakes the worker (the long delay never does): it takes the batch and
    # hangs in export.
    for _ in range(10):
        tracer.start_span("s").end()
    for _ in range(200):
        if backend.calls:
            break
        threading.Event().wait(0.01)
    for _ in range(100):  # the caller keeps going: 50 queue, 50 dropped at once
        tracer.start_span("s").end()
    assert counts.get("queue_full") == 50
    backend.release.set()
    provider.shutdown()
    assert counts.get("export_failed", 0) >= 10  # the stalled batch, refused at last
    assert counts["queue_full"] + counts["export_failed"] <= 110


def test_unsampled_spans_are_not_queued() -> None:
    exporter, counts = InMemorySpanExporter(), Counts()
    _spans(exporter, counts, 100, sample_ratio=0)  # type: ignore[arg-type]
    assert exporter.get_finished_spans() == () and counts == {}


def test_content_is_redacted_then_bounded_and_stays_json() -> None:
    policy = ContentPolicy(capture=True, max_chars=12, redactions=compile_redactions([r"sk-\w+"]))
    shaped = json.loads(policy.shape([("system", "key sk-abc123"), ("user", "second part")]))
    assert shaped[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "key [REDACTED]"[:12] + "…[truncated 2 chars]"}],
    }
    # The budget is spent: later messages keep their role, their text is cut to nothing.
    assert shaped[1]["parts"][0]["content"] == "…[truncated 11 chars]"
    assert (
        json.loads(ContentPolicy(max_chars=100).shape([("user", "short")]))[0]["parts"][0][
            "content"
        ]
        == "short"
    )


def test_bad_redaction_patterns_are_refused_by_the_spec() -> None:
    assert TracingSpec.model_validate({"redact": [r"\d{4}"]}).redact == [r"\d{4}"]
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        TracingSpec.model_validate({"redact": ["[a-"]})


def test_trace_references_round_trip_and_junk_is_no_reference() -> None:
    ctx = parse_trace_ref("4bf92f3577b34da6a3ce929d0e0e473600f067aa0ba902b7")
    assert ctx is not None and trace_ref(ctx) == "4bf92f3577b34da6a3ce929d0e0e473600f067aa0ba902b7"
    for junk in ("", "xyz", "0" * 48, "g" * 48, "4bf92f3577b34da6a3ce929d0e0e4736"):
        assert parse_trace_ref(junk) is None


def test_operation_names_of_the_openai_paths() -> None:
    assert operation_of("/v1/chat/completions") == "chat"
    assert operation_of("/v1/completions") == "text_completion"
    assert operation_of("/v1/embeddings") == "embeddings"
    assert operation_of("/v1/responses") == "chat"
    assert operation_of("/v1/models") == ""


def test_request_and_response_metadata() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert request_meta(json.dumps(chat).encode()) == RequestMeta(
        "m", ({"role": "user", "content": "hi"},)
    )
    assert request_meta(b'{"model": "m", "prompt": "p"}').messages == (
        {"role": "user", "content": "p"},
    )
    assert request_meta(b"not json") == RequestMeta() and request_meta(b"[]") == RequestMeta()
    body = {
        "id": "r1",
        "model": "m-2",
        "choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}],
    }
    assert response_meta(json.dumps(body).encode(), "application/json") == ResponseMeta(
        "r1", "m-2", ("stop", "length")
    )
    sse = (
        b'data: {"id": "s1", "model": "m-3", "choices": [{"delta": {"content": "a"}}]}\n\n'
        b'data: {"id": "s1", "choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert response_meta(sse, "text/event-stream") == ResponseMeta("s1", "m-3", ("stop",))
    responses_api = {"id": "resp_1", "object": "response", "model": "m", "status": "completed"}
    assert response_meta(json.dumps(responses_api).encode(), "application/json").finish_reasons == (
        "completed",
    )
    assert response_meta(b"\xff", "application/json") == ResponseMeta()
