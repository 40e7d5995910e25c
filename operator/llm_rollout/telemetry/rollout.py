"""The operator's decisions as spans: one trace per rollout attempt, built from statuses.

A rollout (one candidate release, one attempt) is one trace. Its id is derived from the
LLMDeployment's uid, the release and the attempt, so every operator replica, and the
same one after a restart, writes into the same trace with no state of its own. In it:

- `analysis {stage}`: one span per analysis, its gates as `gen_ai.evaluation.result`
  events (value, interval, threshold, verdict), plus the sample-ratio check and eval runs;
- `decision {outcome}`: one span per notable decision (those in status.history), under
  the analysis that made it;
- `rollout {release}`: the root, sent when the rollout ends (promoted, rolled back,
  superseded, failed), from its start to its end. Until then its children show with a
  parent still to come, which trace viewers display as they are.

Answers carry the same `llm_rollout.namespace`, `.deployment` and `.release.id`, which is
how a viewer puts a decision next to the answers it was based on.

Pure: statuses and times in, plain span records out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.api.status import (
    ACTIVE_PHASES,
    GateResult,
    LLMDeploymentStatus,
    Phase,
    Verdict,
)
from llm_rollout.engine.history import starts_rollout
from llm_rollout.engine.types import Decision, Outcome
from llm_rollout.kube.builders import Owner
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.spans import SpanEvent, SpanRecord

# Attributes of the operator's spans (ours, next to the answers' llm_rollout.*).
STAGE = "llm_rollout.stage"
STEP = "llm_rollout.step"
STEP_PERCENT = "llm_rollout.step_percent"
ATTEMPT = "llm_rollout.attempt"
PHASE = "llm_rollout.phase"
STABLE_RELEASE_ID = "llm_rollout.stable.release.id"
DECISION_OUTCOME = "llm_rollout.decision.outcome"
DECISION_REASON = "llm_rollout.decision.reason"
DECISION_MESSAGE = "llm_rollout.decision.message"
EVIDENCE_START = "llm_rollout.analysis.evidence_start"
GATE_KIND = "llm_rollout.gate.kind"
GATE_THRESHOLD = "llm_rollout.gate.threshold"
GATE_INTERVAL_LOW = "llm_rollout.gate.interval.low"
GATE_INTERVAL_HIGH = "llm_rollout.gate.interval.high"
GATE_SAMPLES = "llm_rollout.gate.samples"
GATE_STABLE_VALUE = "llm_rollout.gate.stable_value"
GATE_STABLE_SAMPLES = "llm_rollout.gate.stable_samples"
GATE_FAILURES = "llm_rollout.gate.consecutive_failures"

SAMPLE_RATIO_CHECK = "sample-ratio"
EVAL_RUN = "llm_rollout.eval.run"

_UNDER_WAY = frozenset({*ACTIVE_PHASES, Phase.INVALID})
# Phases that end a rollout; the failed ends give its root span an error status.
_FAILED_ENDS = frozenset({Phase.ROLLED_BACK, Phase.FAILED})
_ENDS = frozenset({Phase.PROMOTED, *_FAILED_ENDS})


@dataclass(frozen=True)
class RolloutKey:
    """Which rollout a status is in: its LLMDeployment (uid), candidate and attempt."""

    uid: str
    release: str
    attempt: int

    @property
    def trace_id(self) -> int:
        return derived_id(128, "trace", self.uid, self.release, str(self.attempt))

    @property
    def root_span_id(self) -> int:
        return derived_id(64, "rollout", self.uid, self.release, str(self.attempt))

    def span_id(self, *parts: str) -> int:
        """A child's id, derived like the trace's (no random ids to keep anywhere)."""
        return derived_id(64, "span", self.uid, self.release, str(self.attempt), *parts)


def rollout_key(uid: str, status: LLMDeploymentStatus) -> RolloutKey | None:
    if status.candidate is None:
        return None
    return RolloutKey(uid, status.candidate.id, status.attempt)


def decision_spans(
    owner: Owner,
    before: LLMDeploymentStatus,
    decision: Decision,
    *,
    started: datetime,
    finished: datetime,
) -> list[SpanRecord]:
    """The spans of one reconcile step that went from `before` to `decision.status`;
    `started` and `finished` bracket the step."""
    after = decision.status
    # A rollout is under way while its candidate is active, or held by an invalid spec.
    old = rollout_key(owner.uid, before) if before.phase in _UNDER_WAY else None
    new = rollout_key(owner.uid, after)
    start_ns = _ns(started)
    end_ns = max(_ns(finished), start_ns)
    out: list[SpanRecord] = []

    parent_span_id: int | None = None
    if decision.analysis is not None:
        key = RolloutKey(owner.uid, decision.analysis.release, before.attempt)
        out.append(_analysis_span(owner, key, after, decision, start_ns, end_ns))
        parent_span_id = out[-1].span_id
    decided = new or old
    if decision.notable and decided is not None:
        if parent_span_id is None or decided.trace_id != out[0].trace_id:
            parent_span_id = decided.root_span_id
        out.append(_decision_span(owner, decided, parent_span_id, after, decision, end_ns))

    if old is not None and (new != old or after.phase in _ENDS):
        successor = new if new is not None and new != old else None
        out.append(_root_span(owner, old, before, after, decision, end_ns, successor))
    return out


def _analysis_span(
    owner: Owner,
    key: RolloutKey,
    after: LLMDeploymentStatus,
    decision: Decision,
    start_ns: int,
    end_ns: int,
) -> SpanRecord:
    found = decision.analysis
    assert found is not None
    attrs = _common(owner, key, after)
    attrs |= {
        STAGE: found.stage,
        STEP: found.step_index,
        STEP_PERCENT: found.step_percent,
        DECISION_OUTCOME: decision.outcome.value,
        DECISION_REASON: decision.reason,
    }
    if found.evidence_start is not None:
        attrs[EVIDENCE_START] = found.evidence_start.isoformat()
    failing = [g.name for g in found.gates if g.verdict in (Verdict.FAIL, Verdict.ERROR)]
    events = [SpanEvent(genai.EVALUATION_EVENT, end_ns, _gate_event(g)) for g in found.gates]
    if found.sample_ratio is not None:
        check = found.sample_ratio
        srm = genai.evaluation_attributes(
            SAMPLE_RATIO_CHECK,
            score=check.observed,
            label=check.verdict.value.lower(),
            explanation=check.message or None,
            source="sample_ratio",
        )
        srm |= {
            "llm_rollout.sample_ratio.expected": check.expected,
            "llm_rollout.sample_ratio.candidate": check.candidate,
            "llm_rollout.sample_ratio.stable": check.stable,
        }
        events.append(SpanEvent(genai.EVALUATION_EVENT, end_ns, srm))
        if check.verdict is Verdict.ERROR:
            failing.append(SAMPLE_RATIO_CHECK)
    for ev in found.evals:
        suite = genai.evaluation_attributes(
            ev.suite,
            score=None,
            label=ev.phase.value.lower(),
            explanation=(ev.message or ev.reason) or None,
            source="eval_run",
        )
        suite[EVAL_RUN] = ev.run
        events.append(SpanEvent(genai.EVALUATION_EVENT, end_ns, suite))
    attrs[genai.CHECKS_FAILED] = tuple(failing)
    return SpanRecord(
        name=f"analysis {found.stage}",
        trace_id=key.trace_id,
        span_id=key.span_id("analysis", str(start_ns)),
        parent_span_id=key.root_span_id,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attrs,
        events=tuple(events),
        error=decision.message if decision.outcome is Outcome.ROLLBACK else None,
    )


def _gate_event(gate: GateResult) -> dict[str, Any]:
    attrs = genai.evaluation_attributes(
        gate.name,
        score=gate.value,
        label=gate.verdict.value.lower(),
        explanation=gate.message or None,
        source="gate",
    )
    attrs[GATE_KIND] = gate.kind.value
    if gate.threshold:
        attrs[GATE_THRESHOLD] = gate.threshold
    if gate.interval is not None:
        attrs[GATE_INTERVAL_LOW], attrs[GATE_INTERVAL_HIGH] = gate.interval
    if gate.samples is not None:
        attrs[GATE_SAMPLES] = gate.samples
    if gate.stable_value is not None:
        attrs[GATE_STABLE_VALUE] = gate.stable_value
    if gate.stable_samples is not None:
        attrs[GATE_STABLE_SAMPLES] = gate.stable_samples
    attrs[GATE_FAILURES] = gate.consecutive_failures
    return attrs


def _decision_span(
    owner: Owner,
    key: RolloutKey,
    parent_span_id: int,
    after: LLMDeploymentStatus,
    decision: Decision,
    end_ns: int,
) -> SpanRecord:
    attrs = _common(owner, key, after)
    attrs |= {
        DECISION_OUTCOME: decision.outcome.value,
        DECISION_REASON: decision.reason,
        DECISION_MESSAGE: decision.message,
    }
    # One decision per history entry: the entry's time and outcome name the span.
    when = after.history[-1].time.isoformat() if after.history else str(end_ns)
    return SpanRecord(
        name=f"decision {decision.outcome.value}",
        trace_id=key.trace_id,
        span_id=key.span_id("decision", decision.outcome.value, when),
        parent_span_id=parent_span_id,
        start_ns=end_ns,
        end_ns=end_ns,
        attributes=attrs,
        error=f"{decision.reason}: {decision.message}" if decision.warning else None,
    )


def _root_span(
    owner: Owner,
    key: RolloutKey,
    before: LLMDeploymentStatus,
    after: LLMDeploymentStatus,
    decision: Decision,
    end_ns: int,
    successor: RolloutKey | None,
) -> SpanRecord:
    assert before.candidate is not None
    attrs = _common(owner, key, before)
    attrs |= _release_attributes(before.candidate)
    attrs |= {
        PHASE: after.phase.value if after.phase else "",
        DECISION_OUTCOME: decision.outcome.value,
        DECISION_REASON: decision.reason,
        DECISION_MESSAGE: decision.message,
    }
    begun = _rollout_start(before, key)
    failed = after.phase in _FAILED_ENDS and after.candidate == before.candidate
    return SpanRecord(
        name=f"rollout {key.release}",
        trace_id=key.trace_id,
        span_id=key.root_span_id,
        parent_span_id=None,
        start_ns=min(_ns(begun), end_ns) if begun else end_ns,
        end_ns=end_ns,
        attributes=attrs,
        error=f"{decision.reason}: {decision.message}" if failed else None,
        links=((successor.trace_id, successor.root_span_id),) if successor else (),
    )


def _rollout_start(status: LLMDeploymentStatus, key: RolloutKey) -> datetime | None:
    """When this rollout began: its start in history (kept there first of all), else the
    start of its first stage as far as status still knows."""
    starts = [h.time for h in status.history if h.release == key.release and starts_rollout(h)]
    return starts[-1] if starts else status.stage_start_time


def _common(owner: Owner, key: RolloutKey, status: LLMDeploymentStatus) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        genai.NAMESPACE: owner.namespace,
        genai.DEPLOYMENT: owner.name,
        genai.RELEASE_ID: key.release,
        ATTEMPT: key.attempt,
        STAGE: status.stage,
        STEP: status.step_index,
        STEP_PERCENT: status.step_percent,
    }
    if status.phase is not None:
        attrs[PHASE] = status.phase.value
    if status.stable is not None:
        attrs[STABLE_RELEASE_ID] = status.stable.id
    return attrs


def _release_attributes(release: ReleaseInfo) -> dict[str, Any]:
    return {
        genai.RELEASE_MODEL_REVISION: release.model_revision,
        genai.RELEASE_PROMPT_VERSION: release.prompt_version,
        genai.RELEASE_KNOWLEDGE_BASE: release.knowledge_base,
    }


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1e9)


def derived_id(bits: int, *parts: str) -> int:
    """A `bits`-wide id hashed from `parts`: the same wherever and whenever it is made."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    value = int.from_bytes(digest[: bits // 8], "big")
    return value or 1  # all-zero ids are invalid


__all__ = [
    "RolloutKey",
    "decision_spans",
    "derived_id",
    "rollout_key",
]
