"""An eval run as spans: the run, one span per case and release, and every check and
judge score as a `gen_ai.evaluation.result` event, the same shape as the router's checks
and the users' feedback.

A run the operator started for a rollout goes into that rollout's trace, under its
root span (ids derived as in `telemetry.rollout`). A trace viewer then shows, next to
the analysis that waited for the suite, each golden-set case the candidate answered and
what the judges and checks made of it. A run made by hand (no LLMDeployment owning it)
is a trace of its own, derived from the run's namespace and name.

Each case's request to the release carries the case span's W3C `traceparent`, so the
application's own spans (retrieval, tools) join it. Content (the case's messages and the
answer) is recorded only when the conventions' switch is on, redacted and cut like the
router's.

Pure: outcomes and times in, plain span records out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_rollout.api.evalrun import CaseResult, LLMEvalRunSpec
from llm_rollout.api.spec import EvalSuite
from llm_rollout.evals.aggregate import CaseOutcome, case_result
from llm_rollout.evals.judge import JudgeScore
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.rollout import ATTEMPT, EVAL_RUN, STAGE, RolloutKey, derived_id
from llm_rollout.telemetry.spans import SpanEvent, SpanRecord

EVAL_SUITE = "llm_rollout.eval.suite"
EVAL_CASE = "llm_rollout.eval.case"
EVAL_CASE_RESULT = "llm_rollout.eval.case.result"
EVAL_CASE_CRITERION = "llm_rollout.eval.case.criterion"
EVAL_PHASE = "llm_rollout.eval.phase"
EVAL_REASON = "llm_rollout.eval.reason"
EVAL_COMPOSITE = "llm_rollout.eval.composite"
EVAL_CASES_TOTAL = "llm_rollout.eval.cases.total"
EVAL_CASES_PASSED = "llm_rollout.eval.cases.passed"
JUDGE_MODEL = "llm_rollout.judge.model"


@dataclass(frozen=True)
class EvalRunTrace:
    """Where one eval run's spans go, with every id derived (nothing to store)."""

    trace_id: int
    parent_span_id: int | None  # the rollout's root span, when the run belongs to one
    run_span_id: int
    _seed: tuple[str, ...]

    def case_span_id(self, release: str, case_id: str) -> int:
        return derived_id(64, "eval-case", *self._seed, release, case_id)

    def traceparent(self, release: str, case_id: str) -> str:
        """The W3C `traceparent` of a case's request to `release` (sampled)."""
        return f"00-{self.trace_id:032x}-{self.case_span_id(release, case_id):016x}-01"


def eval_run_trace(
    namespace: str, run_name: str, spec: LLMEvalRunSpec, owner_uid: str | None
) -> EvalRunTrace:
    """The rollout's trace when `owner_uid` (the LLMDeployment's) is known, else the run's."""
    if owner_uid:
        key = RolloutKey(owner_uid, spec.release, spec.attempt)
        return EvalRunTrace(
            trace_id=key.trace_id,
            parent_span_id=key.root_span_id,
            run_span_id=key.span_id("eval", run_name),
            _seed=(owner_uid, spec.release, str(spec.attempt), run_name),
        )
    return EvalRunTrace(
        trace_id=derived_id(128, "eval-trace", namespace, run_name),
        parent_span_id=None,
        run_span_id=derived_id(64, "eval", namespace, run_name),
        _seed=(namespace, run_name),
    )


@dataclass(frozen=True)
class RunEnd:
    """How the run ended, as its status says."""

    phase: str
    reason: str
    message: str
    composite: float | None = None
    cases_total: int = 0
    cases_passed: int = 0


def case_events(suite: EvalSuite, outcome: CaseOutcome, at_ns: int) -> list[SpanEvent]:
    """The case's checks and judge scores as `gen_ai.evaluation.result` events."""
    events = [
        SpanEvent(
            genai.EVALUATION_EVENT,
            at_ns,
            genai.evaluation_attributes(
                check.name,
                score=1.0 if check.passed else 0.0,
                label="pass" if check.passed else "fail",
                explanation=check.detail or None,
                source="heuristic",  # as the router's online checks
            ),
        )
        for check in outcome.checks
    ]
    for judge in suite.judges:
        score = outcome.scores.get(judge.name)
        if score is None:
            continue
        if isinstance(score, JudgeScore):
            passed = judge.scale.normalise(score.score) >= suite.pass_threshold
            attrs = genai.evaluation_attributes(
                judge.name,
                score=score.score,
                label="pass" if passed else "fail",
                explanation=score.reason or None,
                source="judge",
            )
        else:
            attrs = genai.evaluation_attributes(
                judge.name,
                score=None,
                label="invalid",
                explanation=f"{score.kind}: {score.detail}" if score.detail else score.kind,
                source="judge",
            )
            attrs[genai.ERROR_TYPE] = score.kind
        attrs[JUDGE_MODEL] = judge.model
        events.append(SpanEvent(genai.EVALUATION_EVENT, at_ns, attrs))
    return events


def eval_run_spans(
    trace: EvalRunTrace,
    *,
    namespace: str,
    run_name: str,
    spec: LLMEvalRunSpec,
    outcomes: Mapping[str, Sequence[CaseOutcome]],
    started_ns: int,
    ended_ns: int,
    end: RunEnd,
    content: genai.ContentPolicy,
) -> list[SpanRecord]:
    """The run's span and one span per case and release evaluated."""
    suite = spec.suite
    common: dict[str, Any] = {
        genai.NAMESPACE: namespace,
        genai.DEPLOYMENT: spec.deployment,
        EVAL_RUN: run_name,
        EVAL_SUITE: suite.name,
        STAGE: spec.stage,
        ATTEMPT: spec.attempt,
    }
    run_attrs = common | {
        genai.RELEASE_ID: spec.release,
        EVAL_PHASE: end.phase,
        EVAL_REASON: end.reason,
        EVAL_CASES_TOTAL: end.cases_total,
        EVAL_CASES_PASSED: end.cases_passed,
    }
    if end.composite is not None:
        run_attrs[EVAL_COMPOSITE] = end.composite
    ended_ns = max(ended_ns, started_ns)
    spans = [
        SpanRecord(
            name=f"eval {suite.name}",
            trace_id=trace.trace_id,
            span_id=trace.run_span_id,
            parent_span_id=trace.parent_span_id,
            start_ns=started_ns,
            end_ns=ended_ns,
            attributes=run_attrs,
            error=f"{end.reason}: {end.message}" if end.phase == "Failed" else None,
        )
    ]
    for release, release_outcomes in outcomes.items():
        for outcome in release_outcomes:
            spans.append(_case_span(trace, suite, common, release, outcome, content, ended_ns))
    return spans


def _case_span(
    trace: EvalRunTrace,
    suite: EvalSuite,
    common: Mapping[str, Any],
    release: str,
    outcome: CaseOutcome,
    content: genai.ContentPolicy,
    fallback_ns: int,
) -> SpanRecord:
    case = outcome.case
    result, criterion, detail = case_result(suite, outcome)
    start_ns = int(outcome.started * 1e9) if outcome.started is not None else fallback_ns
    end_ns = int(outcome.finished * 1e9) if outcome.finished is not None else start_ns
    end_ns = max(end_ns, start_ns)
    attrs = dict(common) | {
        genai.RELEASE_ID: release,
        genai.OPERATION: "chat",
        EVAL_CASE: case.id,
        EVAL_CASE_RESULT: result.value,
    }
    if criterion:
        attrs[EVAL_CASE_CRITERION] = criterion
    failed = [c.name for c in outcome.checks if not c.passed]
    if failed:
        attrs[genai.CHECKS_FAILED] = tuple(failed)
    if outcome.error is not None:
        attrs[genai.ERROR_TYPE] = outcome.error.kind
    if content.capture:
        attrs[genai.INPUT_MESSAGES] = content.shape(
            [(m["role"], m["content"]) for m in case.messages]
        )
        if outcome.answer is not None:
            attrs[genai.OUTPUT_MESSAGES] = content.output(outcome.answer, outcome.finish_reason)
    return SpanRecord(
        name=f"eval case {case.id}",
        trace_id=trace.trace_id,
        span_id=trace.case_span_id(release, case.id),
        parent_span_id=trace.run_span_id,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attrs,
        events=tuple(case_events(suite, outcome, end_ns)),
        error=detail if result is CaseResult.ERROR else None,
    )
