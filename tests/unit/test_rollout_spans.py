"""The operator's analysis and decision spans (telemetry/rollout.py), built from the real
engine's decisions, and how they reach a span processor (telemetry/spans.RecordSink)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import StatusCode
from tests.unit.engine_support import BAD, GOOD, NAME, NS, Driver, ObsFn, at, started, with_revision

from llm_rollout.api import ManualAction, release_id
from llm_rollout.engine import Decision
from llm_rollout.kube.builders import Owner
from llm_rollout.telemetry import genai
from llm_rollout.telemetry import rollout as r
from llm_rollout.telemetry.spans import RecordSink, SpanRecord

OWNER = Owner(NS, NAME, "uid-1")


class Traced:
    """A Driver whose every call also builds its spans, as the controller does."""

    def __init__(self, driver: Driver) -> None:
        self.d = driver
        self.spans: list[SpanRecord] = []

    def call(
        self, dt: float = 0.0, fn: ObsFn | None = None, action: ManualAction | None = None
    ) -> Decision:
        before = self.d.status
        decision = self.d.call(dt, fn, action)
        now = at(self.d.t)
        self.spans += r.decision_spans(OWNER, before, decision, started=now, finished=now)
        return decision

    def named(self, prefix: str) -> list[SpanRecord]:
        return [s for s in self.spans if s.name.startswith(prefix)]


def gate_events(span: SpanRecord) -> list[dict[str, object]]:
    return [
        dict(e.attributes)
        for e in span.events
        if e.name == genai.EVALUATION_EVENT and e.attributes[genai.EVALUATION_SOURCE] == "gate"
    ]


def parents_resolve(spans: Sequence[SpanRecord]) -> None:
    ids = {s.span_id for s in spans}
    for s in spans:
        assert s.parent_span_id is None or s.parent_span_id in ids, s.name


def test_a_regressed_rollout_is_one_trace_from_start_to_rollback() -> None:
    t = Traced(started())
    candidate = t.d.status.candidate
    assert candidate is not None
    key = r.RolloutKey(OWNER.uid, candidate.id, t.d.status.attempt)
    while t.d.status.phase.value != "RolledBack":
        t.call(30, BAD)
        assert t.d.t < 600, "never rolled back"

    assert {s.trace_id for s in t.spans} == {key.trace_id}
    analyses = t.named("analysis ")
    assert len(analyses) >= 2 and all(s.name == "analysis experts" for s in analyses)
    for span in analyses:
        (gate,) = gate_events(span)
        assert gate[genai.EVALUATION_NAME] == "feedback"
        assert gate[genai.EVALUATION_LABEL] == "fail"
        assert gate[genai.EVALUATION_SCORE] == 0.2
        low, high = gate[r.GATE_INTERVAL_LOW], gate[r.GATE_INTERVAL_HIGH]
        assert isinstance(low, float) and isinstance(high, float) and low < 0.2 < high < 0.6
        assert gate[r.GATE_SAMPLES] == 100 and "0.6" in str(gate[r.GATE_THRESHOLD])
        assert span.attributes[genai.CHECKS_FAILED] == ("feedback",)
        assert span.attributes[genai.RELEASE_ID] == candidate.id
    assert [g[r.GATE_FAILURES] for s in analyses for g in gate_events(s)][-2:] == [1, 2]

    (rollback,) = t.named("decision Rollback")
    assert rollback.parent_span_id == analyses[-1].span_id  # the analysis that decided it
    assert rollback.error is not None and "GateFailed" in rollback.error
    assert rollback.attributes[r.DECISION_REASON] == "GateFailed"

    (root,) = t.named("rollout ")
    assert root.span_id == key.root_span_id and root.parent_span_id is None
    assert root.name == f"rollout {candidate.id}"
    assert root.start_ns == r._ns(at(0)) and root.end_ns == r._ns(at(t.d.t))
    assert root.error is not None and "rolled back" in root.error
    assert root.attributes[genai.RELEASE_MODEL_REVISION] == "2"
    assert root.attributes[r.PHASE] == "RolledBack"
    assert all(s.parent_span_id == root.span_id for s in analyses)
    parents_resolve(t.spans)


def test_the_analyses_that_advance_and_promote_keep_their_gates() -> None:
    # Advance and Promote clear the gates from status; the spans must still show them.
    t = Traced(started())
    while t.d.status.phase.value != "Promoted":
        t.call(30, GOOD)
        assert t.d.t < 3600, "never promoted"
    advances = t.named("decision Advance")
    assert {s.attributes[r.STAGE] for s in advances} >= {"beta", "all"}
    by_id = {s.span_id: s for s in t.spans}
    for decision in [*advances, *t.named("decision Promote")]:
        analysis = by_id[decision.parent_span_id or 0]
        assert analysis.name.startswith("analysis ")
        assert [g[genai.EVALUATION_LABEL] for g in gate_events(analysis)] == ["pass"]
    (promote,) = t.named("decision Promote")
    assert promote.error is None
    (root,) = t.named("rollout ")
    assert root.error is None and root.attributes[r.DECISION_OUTCOME] == "Promote"
    # each step's percent at the time, not after the move
    assert {
        (s.attributes[r.STAGE], s.attributes[r.STEP_PERCENT]) for s in t.named("analysis ")
    } >= {
        ("beta", 50),
        ("beta", 100),
        ("all", 10),
        ("all", 50),
    }
    parents_resolve(t.spans)


def test_nothing_is_sent_between_analyses() -> None:
    t = Traced(started())
    t.call(30, GOOD)
    sent = len(t.spans)
    t.call(1, GOOD)  # not due: no analysis, no decision
    assert len(t.spans) == sent


def test_a_superseded_rollout_ends_and_links_to_the_next() -> None:
    t = Traced(started())
    t.call(30, GOOD)
    old = r.rollout_key(OWNER.uid, t.d.status)
    t.d.apply(with_revision(t.d.spec, "3"))
    t.call(1, GOOD)
    new = r.rollout_key(OWNER.uid, t.d.status)
    assert old is not None and new is not None and old.trace_id != new.trace_id
    (root,) = t.named("rollout ")
    assert root.trace_id == old.trace_id and root.error is None
    assert root.attributes[r.DECISION_OUTCOME] == "Supersede"
    assert list(root.links) == [(new.trace_id, new.root_span_id)]
    (supersede,) = t.named("decision Supersede")
    assert supersede.trace_id == new.trace_id and supersede.parent_span_id == new.root_span_id


def test_a_retry_is_a_trace_of_its_own() -> None:
    t = Traced(started())
    first = r.rollout_key(OWNER.uid, t.d.status)
    t.call(0, GOOD, ManualAction("abort", "a1"))
    assert t.d.status.phase.value == "RolledBack"
    t.call(1, GOOD, ManualAction("retry", "r1"))
    second = r.rollout_key(OWNER.uid, t.d.status)
    assert first is not None and second is not None
    assert (first.release, first.trace_id) != (second.release, second.trace_id)
    assert first.release == second.release
    (abort,) = t.named("decision Rollback")
    assert abort.parent_span_id == first.root_span_id  # a manual abort: no analysis
    assert [s.trace_id for s in t.named("decision Retry")] == [second.trace_id]


def test_ids_are_derived_and_valid() -> None:
    key = r.RolloutKey("uid-1", release_id(started().spec), 1)
    again = r.RolloutKey("uid-1", key.release, 1)
    assert key.trace_id == again.trace_id and key.root_span_id == again.root_span_id
    others = [r.RolloutKey("uid-2", key.release, 1), r.RolloutKey("uid-1", key.release, 2)]
    assert len({key.trace_id, *(o.trace_id for o in others)}) == 3
    assert 0 < key.trace_id < 2**128 and 0 < key.root_span_id < 2**64
    assert key.span_id("analysis", "1") != key.span_id("analysis", "2")


def _sink(ratio: float) -> tuple[RecordSink, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=TraceIdRatioBased(ratio))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return RecordSink(provider, "test"), exporter


def test_the_sink_samples_whole_rollouts_and_keeps_ids_and_times() -> None:
    t = Traced(started())
    t.call(30, BAD)
    t.call(30, BAD)
    # the same rollout's spans as 40 rollouts (trace ids of 40 LLMDeployments)
    traced = [
        [dataclasses.replace(s, trace_id=r.RolloutKey(f"u{n}", "x", 1).trace_id) for s in t.spans]
        for n in range(40)
    ]
    sink, exporter = _sink(0.5)
    for spans in traced:
        sink.send(spans)
    got = exporter.get_finished_spans()
    by_trace: dict[int, int] = {}
    for span in got:
        assert span.context is not None
        by_trace[span.context.trace_id] = by_trace.get(span.context.trace_id, 0) + 1
    sizes = {spans[0].trace_id: len(spans) for spans in traced}
    assert 5 < len(by_trace) < 35  # about half the rollouts
    assert all(count == sizes[tid] for tid, count in by_trace.items())  # each whole

    one = traced[0]
    sink, exporter = _sink(1.0)
    sink.send(one)
    out = {s.context.span_id: s for s in exporter.get_finished_spans() if s.context}
    for record in one:
        span = out[record.span_id]
        assert span.start_time == record.start_ns and span.end_time == record.end_ns
        parent = span.parent.span_id if span.parent else None
        assert parent == record.parent_span_id
        assert span.status.status_code is (StatusCode.ERROR if record.error else StatusCode.UNSET)
        assert len(span.events) == len(record.events)
