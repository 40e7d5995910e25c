"""The router's traces: one span per proxied answer, its checks as evaluation events, and
one span per accepted feedback, parented to the answer it rates.

Off (no OTLP endpoint) the router holds no `RouterTracing` at all and pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.heuristics import CheckResult
from llm_rollout.router.extract import RequestMeta, ResponseMeta, Usage
from llm_rollout.router.tokens import TokenClaims
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.genai import ContentPolicy
from llm_rollout.telemetry.spans import RecordedSpan, SpanRecorder

_PROPAGATOR = TraceContextTextMapPropagator()
# W3C Trace Context level 2: the server's trace context, handed back to the client.
TRACE_RESPONSE_HEADER = "traceresponse"


def trace_ref(ctx: SpanContext) -> str:
    """`<trace id><span id>` in hex: what a feedback token carries to find the answer."""
    return f"{ctx.trace_id:032x}{ctx.span_id:016x}"


def parse_trace_ref(ref: str) -> SpanContext | None:
    if len(ref) != 48:
        return None
    try:
        trace_id, span_id = int(ref[:32], 16), int(ref[32:], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )


class AnswerTrace:
    """The span of one proxied request: started on arrival, ended after its analysis."""

    def __init__(self, span: RecordedSpan, content: ContentPolicy, operation: str) -> None:
        self.span = span
        self.content = content
        self.operation = operation
        # Set once the relay owns the span: it ends it after the answer's analysis.
        self.relayed = False

    @property
    def ref(self) -> str:
        """The token's trace reference; "" when the span is not sampled (nothing to link)."""
        ctx = self.span.context
        return trace_ref(ctx) if ctx.trace_flags.sampled else ""

    def placed(
        self, namespace: str, deployment: str, cohort: str, bucket: int, sticky: bool, rid: str
    ) -> None:
        self.span.update(
            {
                genai.NAMESPACE: namespace,
                genai.DEPLOYMENT: deployment,
                genai.COHORT: cohort,
                genai.BUCKET: bucket,
                genai.STICKY: sticky,
                genai.REQUEST_ID: rid,
            }
        )

    def release(self, release: ReleaseInfo, fallback: bool) -> None:
        self.span.update(
            {
                genai.RELEASE_ID: release.id,
                genai.RELEASE_MODEL_REVISION: release.model_revision,
                genai.RELEASE_PROMPT_VERSION: release.prompt_version,
                genai.RELEASE_KNOWLEDGE_BASE: release.knowledge_base,
                genai.FALLBACK: fallback,
            }
        )
        if release.model:
            self.span.set(genai.REQUEST_MODEL, release.model)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """The W3C trace context of this span, for the backend: its spans join the trace."""
        headers["traceparent"] = self.traceparent()
        if self.span.context.trace_state:
            headers["tracestate"] = self.span.context.trace_state.to_header()

    def traceparent(self) -> str:
        """This span as a W3C `traceparent` value (also the client's `traceresponse`)."""
        ctx = self.span.context
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    def status(self, code: int, error_type: str = "") -> None:
        """The HTTP status given to the client, and the failure if there was one."""
        self.span.set("http.response.status_code", code)
        if error_type or code >= 500:
            self.span.set(genai.ERROR_TYPE, error_type or str(code))
            self.span.set_error(error_type or str(code))

    def analysed(
        self,
        request: RequestMeta,
        response: ResponseMeta,
        usage: Usage | None,
        checks: Sequence[CheckResult],
        output_text: str | None,
    ) -> None:
        span = self.span
        if not span.recording:
            return
        if request.model:
            span.set(genai.REQUEST_MODEL, request.model)
            # The conventions' span name: "{operation} {request model}".
            span.name = f"{self.operation or 'proxy'} {request.model}"
        if response.id:
            span.set(genai.RESPONSE_ID, response.id)
        if response.model:
            span.set(genai.RESPONSE_MODEL, response.model)
        if response.finish_reasons:
            span.set(genai.FINISH_REASONS, response.finish_reasons)
        if usage is not None:
            span.set(genai.INPUT_TOKENS, usage.input_tokens)
            span.set(genai.OUTPUT_TOKENS, usage.output_tokens)
        if checks:
            span.set(genai.CHECKS_FAILED, tuple(r.name for r in checks if not r.passed))
        for r in checks:
            span.add_event(
                genai.EVALUATION_EVENT,
                genai.evaluation_attributes(
                    r.name,
                    score=1.0 if r.passed else 0.0,
                    label="pass" if r.passed else "fail",
                    explanation=r.detail or None,
                    source="heuristic",
                ),
            )
        if self.content.capture:
            span.set(
                genai.INPUT_MESSAGES, self.content.shape(genai.input_messages(request.messages))
            )
            if output_text is not None:
                reason = response.finish_reasons[0] if response.finish_reasons else ""
                span.set(genai.OUTPUT_MESSAGES, self.content.output(output_text, reason))

    def end(self) -> None:
        self.span.end()


class RouterTracing:
    """Starts answer spans (continuing a client's valid W3C trace context) and feedback
    spans, on a provider of its own (`telemetry.export.tracer_provider`)."""

    def __init__(self, provider: TracerProvider, content: ContentPolicy) -> None:
        self.provider = provider
        self.spans = SpanRecorder(provider, "llm_rollout.router")
        self.content = content

    def start_answer(
        self, headers: Mapping[str, str], path: str, redactions: genai.Redactions
    ) -> AnswerTrace:
        # A malformed traceparent extracts to an empty context: a new trace starts.
        parent = _PROPAGATOR.extract(headers)
        op = genai.operation_of(path)
        span = self.spans.start(
            op or "proxy",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={genai.OPERATION: op} if op else None,
        )
        content = self.content.with_redactions(redactions) if redactions else self.content
        return AnswerTrace(span, content, op)

    def feedback(
        self,
        claims: TokenClaims,
        *,
        source: str,
        rating: str,
        thumbs: str | None,
        score: int | None,
        criteria: Mapping[str, int],
        comment: str | None,
        redactions: genai.Redactions,
    ) -> None:
        """Record one accepted feedback as a span under the answer's span (when the token
        links one)."""
        answer = parse_trace_ref(claims.trc)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(answer)) if answer else None
        attrs: dict[str, Any] = {
            genai.NAMESPACE: claims.ns,
            genai.DEPLOYMENT: claims.dep,
            genai.RELEASE_ID: claims.rel,
            genai.COHORT: claims.coh,
            genai.REQUEST_ID: claims.rid,
            genai.FEEDBACK_SOURCE: source,
        }
        span = self.spans.start(
            f"feedback {source}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=[Link(answer)] if answer else (),
        )
        explanation = genai.redact(comment, redactions) if comment and redactions else comment
        overall = 1.0 if thumbs == "up" else 0.0 if thumbs == "down" else score
        span.add_event(
            genai.EVALUATION_EVENT,
            genai.evaluation_attributes(
                f"{source}_feedback",
                score=overall,
                label=rating,
                explanation=explanation,
                source=source,
            ),
        )
        for name, value in criteria.items():
            span.add_event(
                genai.EVALUATION_EVENT,
                genai.evaluation_attributes(
                    name,
                    score=value,
                    label="positive" if value >= 4 else "neutral" if value == 3 else "negative",
                    explanation=None,
                    source=source,
                ),
            )
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()
