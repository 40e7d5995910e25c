"""The router's traces over real HTTP, exported through the real OpenTelemetry SDK into its
in-memory exporter: span attributes, W3C trace context both ways, content only when
switched on (redacted, bounded), feedback spans under the answer they rate."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_rollout.api.routing_table import bucket_of
from llm_rollout.router.tracing import RouterTracing
from llm_rollout.telemetry.export import ExportSettings, tracer_provider
from llm_rollout.telemetry.genai import ContentPolicy
from tests.router.conftest import NAME, NS, RunningRouter, deployment

CHAT = "/v1/chat/completions"
QUESTION = "Mail bob@example.com about ACME"
BODY = {"model": "m-small", "messages": [{"role": "user", "content": QUESTION}]}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


class Traces:
    """A RouterTracing on the SDK's in-memory exporter, and the spans it has exported."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.counts: dict[str, int] = {}
        self.tracings: list[RouterTracing] = []

    def count(self, outcome: str, n: int) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n

    def tracing(self, *, ratio: float = 1.0, content: ContentPolicy | None = None) -> RouterTracing:
        settings = ExportSettings("http://unused", "llm-rollout-router", sample_ratio=ratio)
        provider = tracer_provider(settings, self.count, exporter=self.exporter)
        t = RouterTracing(provider, content or ContentPolicy())
        self.tracings.append(t)
        return t

    def spans(self) -> list[ReadableSpan]:
        for t in self.tracings:
            t.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith(prefix)]


@pytest.fixture
def traces() -> Iterator[Traces]:
    t = Traces()
    yield t
    for tracing in t.tracings:
        tracing.shutdown()


CHECKS = [{"name": "brand", "type": "regex", "pattern": "ACME"}]


async def started(
    make_router: Any, model_servers: Any, router_tracing: RouterTracing, **spec: Any
) -> tuple[RunningRouter, Any]:
    server = await model_servers("stable1", answer="Sure, I wrote to bob@example.com.")
    router = await make_router(
        [deployment(candidate=None, checks=CHECKS, **spec)],
        {f"{NS}/{NAME}/stable1": server.url},
        tracing=router_tracing,
    )
    return router, server


async def ask(
    router: RunningRouter, body: Any = BODY, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(router.url + CHAT, json=body, headers={"x-user-id": "u1", **headers}) as r,
    ):
        data = await r.read()
        return r.status, {k.lower(): v for k, v in r.headers.items()}, data


async def test_one_span_per_answer_with_genai_and_release_attributes(
    make_router, model_servers, traces
) -> None:
    router, _ = await started(make_router, model_servers, traces.tracing())
    status, headers, _ = await ask(router)
    await router.settle()
    assert status == 200
    [span] = traces.named("chat")
    a = span.attributes or {}
    assert span.name == "chat m-small"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "m-small"
    assert a["gen_ai.response.model"] == "stable1"  # what the model server said
    assert a["gen_ai.response.id"] == "c1"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (7, 5)
    assert a["http.response.status_code"] == 200
    assert a["llm_rollout.deployment"] == NAME and a["llm_rollout.namespace"] == NS
    assert a["llm_rollout.release.id"] == "stable1"
    assert a["llm_rollout.release.model_revision"] == "r1"
    assert a["llm_rollout.release.prompt_version"] == "p1"
    assert a["llm_rollout.release.knowledge_base"] == "kb-2024"
    assert a["llm_rollout.cohort"] == "all" and a["llm_rollout.sticky"] is True
    assert a["llm_rollout.bucket"] == bucket_of(NS, NAME, "u1")
    assert a["llm_rollout.request_id"] == headers["x-request-id"]
    # The brand check failed (the answer has no ACME): an evaluation event on the span.
    assert a["llm_rollout.checks.failed"] == ("brand",)
    [event] = span.events
    assert event.name == "gen_ai.evaluation.result"
    assert {
        "gen_ai.evaluation.name": "brand",
        "gen_ai.evaluation.score.label": "fail",
        "gen_ai.evaluation.score.value": 0.0,
        "llm_rollout.evaluation.source": "heuristic",
    }.items() <= dict(event.attributes or {}).items()
    # Content is off by default.
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    ctx = span.get_span_context()
    flags = f"{int(ctx.trace_flags):02x}"
    assert headers["traceresponse"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}"
    assert traces.counts == {"exported": 1}


async def test_client_trace_is_continued_and_passed_to_the_backend(
    make_router, model_servers, traces
) -> None:
    router, server = await started(make_router, model_servers, traces.tracing())
    await ask(router, traceparent=CLIENT_PARENT)
    await router.settle()
    [span] = traces.named("chat")
    assert f"{span.context.trace_id:032x}" == CLIENT_TRACE
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
    # The backend gets the router's span as its parent, so the app's spans join the trace.
    sent = server.seen[-1]["headers"]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01"


@pytest.mark.parametrize(
    "bad", ["junk", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-xyz"]
)
async def test_malformed_traceparent_starts_a_new_trace(
    make_router, model_servers, traces, bad: str
) -> None:
    router, server = await started(make_router, model_servers, traces.tracing())
    status, _, _ = await ask(router, traceparent=bad)
    await router.settle()
    assert status == 200
    [span] = traces.named("chat")
    assert span.parent is None and span.context.trace_id != 0
    assert server.seen[-1]["headers"]["traceparent"].split("-")[1] == (
        f"{span.context.trace_id:032x}"
    )


async def test_content_is_recorded_only_when_switched_on_redacted_and_bounded(
    make_router, model_servers, traces
) -> None:
    on = ContentPolicy(capture=True, max_chars=20)
    router, _ = await started(
        make_router,
        model_servers,
        traces.tracing(content=on),
        tracing={"redact": [r"[\w.]+@[\w.]+"]},
    )
    await ask(router)
    await router.settle()
    [span] = traces.named("chat")
    a = span.attributes or {}
    inp = json.loads(str(a["gen_ai.input.messages"]))
    out = json.loads(str(a["gen_ai.output.messages"]))
    assert inp[0]["role"] == "user"
    # Redacted first, then cut to 20 characters with a marker saying how much went.
    assert inp[0]["parts"][0]["content"] == "Mail [REDACTED] abou…[truncated 6 chars]"
    assert out[0]["role"] == "assistant"
    # The conventions' schema requires it; Phoenix drops output messages without one.
    assert out[0]["finish_reason"] == "stop"
    # "Sure, I wrote to [REDACTED]" (the pattern takes the final dot too), cut.
    assert out[0]["parts"][0]["content"] == "Sure, I wrote to [RE…[truncated 7 chars]"


async def test_errors_get_a_span_with_error_type(make_router, model_servers, traces) -> None:
    router = await make_router(
        [deployment(candidate=None)],
        {f"{NS}/{NAME}/stable1": "http://127.0.0.1:9"},
        tracing=traces.tracing(),
    )
    status, _, _ = await ask(router)
    assert status == 502
    [span] = traces.named("chat")
    a = span.attributes or {}
    assert a["error.type"] == "502" and a["http.response.status_code"] == 502
    assert span.status.status_code.name == "ERROR"


async def test_feedback_span_is_a_child_of_the_answer_and_logged_with_its_trace(
    make_router, model_servers, traces, caplog
) -> None:
    router, _ = await started(make_router, model_servers, traces.tracing())
    _, headers, _ = await ask(router)
    await router.settle()
    caplog.set_level(logging.INFO, logger="llm_rollout.feedback")
    async with aiohttp.ClientSession() as s:
        body = {
            "token": headers["x-llm-feedback-token"],
            "score": 2,
            "source": "expert",
            "criteria": {"accuracy": 1},
            "comment": "wrong brand",
        }
        async with s.post(router.url + "/feedback", json=body) as r:
            assert r.status == 202
    [answer] = traces.named("chat")
    [fb] = traces.named("feedback")
    assert fb.name == "feedback expert"
    assert fb.context.trace_id == answer.context.trace_id
    assert fb.parent is not None and fb.parent.span_id == answer.context.span_id
    assert [link.context.span_id for link in fb.links] == [answer.context.span_id]
    events = [dict(e.attributes or {}) for e in fb.events]
    assert events[0]["gen_ai.evaluation.name"] == "expert_feedback"
    assert events[0]["gen_ai.evaluation.score.value"] == 2.0
    assert events[0]["gen_ai.evaluation.score.label"] == "negative"
    assert events[0]["gen_ai.evaluation.explanation"] == "wrong brand"
    assert events[1]["gen_ai.evaluation.name"] == "accuracy"
    assert events[1]["gen_ai.evaluation.score.value"] == 1.0
    [line] = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_rollout.feedback"
    ]
    assert line["traceId"] == f"{answer.context.trace_id:032x}"
    assert line["spanId"] == f"{answer.context.span_id:016x}"


async def test_feedback_on_an_unsampled_answer_is_counted_without_a_link(
    make_router, model_servers, traces, caplog
) -> None:
    router, _ = await started(make_router, model_servers, traces.tracing(ratio=0.0))
    _, headers, _ = await ask(router)
    await router.settle()
    caplog.set_level(logging.INFO, logger="llm_rollout.feedback")
    async with aiohttp.ClientSession() as s:
        body = {"token": headers["x-llm-feedback-token"], "thumbs": "down"}
        async with s.post(router.url + "/feedback", json=body) as r:
            assert r.status == 202
    assert traces.spans() == []  # nothing sampled at ratio 0
    [line] = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "llm_rollout.feedback"
    ]
    assert line["traceId"] is None and line["rating"] == "negative"
    metrics = await router.scrape()
    assert (
        'llm_feedback_total{cohort="all",deployment="chat",namespace="team",rating="negative"'
        in metrics
    )
