"""Finishing a call: display fields, routing, conditions, history and the Decision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from llm_rollout.api.status import (
    ConditionStatus,
    ConditionType,
    HistoryEntry,
    LLMDeploymentStatus,
    PauseReason,
    Phase,
)
from llm_rollout.engine.analysis import LATE_ANALYSIS_SECONDS, interval_reference, requeue_after
from llm_rollout.engine.conditions import set_condition
from llm_rollout.engine.context import Context, Step
from llm_rollout.engine.exposure import build_routing
from llm_rollout.engine.history import record as record_history
from llm_rollout.engine.plan import current_stage
from llm_rollout.engine.types import (
    Decision,
    Outcome,
)


def set_display_fields(ctx: Context, s: LLMDeploymentStatus) -> None:
    s.release = s.candidate.id if s.candidate else s.stable.id if s.stable else ""
    stage = current_stage(ctx.spec, s)
    if s.candidate is None or stage is None:
        s.stage, s.step, s.step_percent = "", "", 0
        return
    percents = stage.percents
    step = min(s.step_index, len(percents) - 1)
    s.stage = stage.name
    s.step_percent = percents[step]
    s.step = f"{step + 1}/{len(percents)} ({percents[step]}%)"


def set_conditions(
    ctx: Context, old: LLMDeploymentStatus, s: LLMDeploymentStatus, step: Step
) -> None:
    def put(t: ConditionType, ok: bool | None, reason: str, message: str) -> None:
        status = (
            ConditionStatus.UNKNOWN
            if ok is None
            else ConditionStatus.TRUE
            if ok
            else ConditionStatus.FALSE
        )
        s.conditions = set_condition(
            s.conditions, t, status, reason, message, now=ctx.now, generation=ctx.generation
        )

    def kept(t: ConditionType, ok: bool, reason: str, message: str) -> None:
        """Like put, but a NoOp keeps the reason and message the condition already has."""
        prev = old.condition(t)
        flips = prev is None or prev.status != (
            ConditionStatus.TRUE if ok else ConditionStatus.FALSE
        )
        if step.outcome is Outcome.NOOP and not flips and prev is not None:
            put(t, ok, prev.reason, prev.message)
        else:
            put(t, ok, reason, message)

    phase = s.phase
    if phase is Phase.INVALID:
        put(ConditionType.READY, False, "InvalidSpec", s.message)
    elif s.stable is None:
        put(ConditionType.READY, False, "NoRelease", "no release yet")
    elif s.stable.id in ctx.ready:
        put(ConditionType.READY, True, "StableReady", f"stable release {s.stable.id} is ready")
    else:
        put(
            ConditionType.READY,
            False,
            "StableNotReady",
            f"stable release {s.stable.id} is not ready",
        )

    if phase is Phase.PROGRESSING:
        kept(ConditionType.PROGRESSING, True, step.reason, step.message)
    else:
        put(ConditionType.PROGRESSING, False, phase.value if phase else "Idle", s.message)

    if phase in (Phase.ROLLED_BACK, Phase.FAILED):
        kept(ConditionType.DEGRADED, True, step.reason, step.message)
    else:
        put(ConditionType.DEGRADED, False, "AsExpected", "")

    if phase is Phase.PAUSED and s.pause is not None:
        reason = "PausedBySpec"
        if s.pause.reason is not PauseReason.SPEC:
            # Why the errors paused it: metrics, an eval run or the sample ratio.
            pauses = [h.reason for h in s.history if h.decision == Outcome.PAUSE.value]
            reason = pauses[-1] if pauses else "MetricsUnavailable"
        put(ConditionType.PAUSED, True, reason, s.message)
    elif ctx.spec.paused:
        put(
            ConditionType.PAUSED,
            True,
            "PausedBySpec",
            "no rollout in progress; a new release will wait at its first stage",
        )
    else:
        put(ConditionType.PAUSED, False, "NotPaused", "")

    if ctx.analysis is not None:
        if ctx.metrics_broken:
            put(ConditionType.METRICS_AVAILABLE, False, "MetricsUnavailable", "; ".join(ctx.notes))
        else:
            put(
                ConditionType.METRICS_AVAILABLE,
                True,
                "MetricsAvailable",
                "every query of the last analysis answered",
            )
    elif (prev := old.condition(ConditionType.METRICS_AVAILABLE)) is not None:
        put(
            ConditionType.METRICS_AVAILABLE,
            None if prev.status is ConditionStatus.UNKNOWN else prev.status is ConditionStatus.TRUE,
            prev.reason,
            prev.message,
        )
    else:
        put(ConditionType.METRICS_AVAILABLE, None, "NotAnalysed", "no analysis yet")
    set_eval_condition(ctx, old, s, put)
    set_freshness_condition(ctx, s, put)
    set_schedule_condition(ctx, old, s, put)


def set_schedule_condition(
    ctx: Context,
    old: LLMDeploymentStatus,
    s: LLMDeploymentStatus,
    put: Callable[[ConditionType, bool | None, str, str], None],
) -> None:
    """AnalysisOnSchedule, while Progressing: whether this rollout's last analysis started
    within LATE_ANALYSIS_SECONDS of when it was due. An overloaded operator falls behind
    on every rollout alike and says so on each; its verdicts stay right (queries are
    evaluated for the time they were planned for), never "metrics unavailable"."""
    kind = ConditionType.ANALYSIS_ON_SCHEDULE
    if s.phase is not Phase.PROGRESSING:
        s.conditions = [c for c in s.conditions if c.type is not kind]
        return
    if ctx.analysis is None or (reference := interval_reference(old)) is None:
        return  # no analysis in this call: the last one's word stands
    late = (ctx.now - reference).total_seconds() - ctx.spec.analysis.interval_seconds
    limit = f"{LATE_ANALYSIS_SECONDS:g}s"
    if late > LATE_ANALYSIS_SECONDS:
        put(
            kind,
            False,
            "OperatorBehind",
            f"an analysis started more than {limit} after it was due: the operator is "
            "behind (its CPU, the API server or Prometheus); verdicts stay right, the "
            "rollout moves slower",
        )
    else:
        put(kind, True, "OnSchedule", f"the last analysis started within {limit} of its time")


def set_freshness_condition(
    ctx: Context,
    s: LLMDeploymentStatus,
    put: Callable[[ConditionType, bool | None, str, str], None],
) -> None:
    """KnowledgeFresh, with spec.freshness.knowledgeBaseMaxAge: the stable release's
    knowledge-base snapshot is younger than that (True), older (False), or of unknown
    age (Unknown: no createdAt). Messages name the snapshot and its creation time, not
    its age, so the status changes when the verdict does, not at every reconcile."""
    kind = ConditionType.KNOWLEDGE_FRESH
    max_age = ctx.spec.freshness.knowledge_base_max_age_seconds
    if max_age is None or s.stable is None:
        s.conditions = [c for c in s.conditions if c.type is not kind]
        return
    limit = ctx.spec.freshness.knowledge_base_max_age
    snapshot = s.stable.knowledge_base or "(unnamed)"
    created = s.stable.knowledge_base_created
    if created is None:
        put(
            kind,
            None,
            "NoCreationTime",
            f"stable release {s.stable.id}: knowledge base {snapshot} has no "
            "release.knowledgeBase.createdAt",
        )
    elif (ctx.now - created).total_seconds() > max_age:
        put(
            kind,
            False,
            "Stale",
            f"stable release {s.stable.id}: knowledge base {snapshot}, built "
            f"{created.isoformat()}, is older than maxAge {limit}",
        )
    else:
        put(
            kind,
            True,
            "Fresh",
            f"stable release {s.stable.id}: knowledge base {snapshot}, built "
            f"{created.isoformat()}, is within maxAge {limit}",
        )


def set_eval_condition(
    ctx: Context,
    old: LLMDeploymentStatus,
    s: LLMDeploymentStatus,
    put: Callable[[ConditionType, bool | None, str, str], None],
) -> None:
    """EvalsSucceeded, with spec.evals: the current stage's runs all succeeded (True),
    still running (Unknown), failed, timed out or could not be created (False)."""
    kind = ConditionType.EVALS_SUCCEEDED
    if not ctx.spec.evals:
        s.conditions = [c for c in s.conditions if c.type is not kind]
    elif (a := ctx.assessment) is not None:
        if a.errors:
            put(kind, False, a.errors[0].reason, a.error_text())
        elif a.pending:
            put(kind, None, "EvalsRunning", f"stage {a.stage}: waiting for {a.pending_text()}")
        else:
            put(kind, True, "EvalsSucceeded", f"every eval suite of stage {a.stage} succeeded")
    elif old.condition(kind) is None or waiting_to_evaluate(ctx, s):
        put(kind, None, "NotEvaluated", "no eval suite has run in this rollout yet")


def waiting_to_evaluate(ctx: Context, s: LLMDeploymentStatus) -> bool:
    """A rollout whose current stage has suites, before its candidate is exposed there
    (the condition must not keep speaking of an earlier rollout)."""
    stage = current_stage(ctx.spec, s)
    return (
        s.phase is Phase.PROGRESSING
        and not s.exposed
        and stage is not None
        and bool(ctx.spec.suites_at(stage.name))
    )


def is_notable(s: LLMDeploymentStatus, step: Step) -> bool:
    if step.outcome is Outcome.NOOP:
        return False
    if step.outcome is not Outcome.HOLD:
        return True
    last = s.history[-1] if s.history else None
    return last is None or last.decision != Outcome.HOLD.value or last.reason != step.reason


def append_history(s: LLMDeploymentStatus, now: datetime, step: Step) -> None:
    """Record a notable decision in status.history (bounded: engine/history.py)."""
    entry = HistoryEntry(
        time=now,
        decision=step.outcome.value,
        release=s.release,  # the display fields are set: candidate, else stable
        stage=s.stage,
        step=s.step_index,
        reason=step.reason,
        message=step.message,
    )
    s.history = record_history(s.history, entry)


def finish(ctx: Context, old: LLMDeploymentStatus, s: LLMDeploymentStatus, step: Step) -> Decision:
    if ctx.restored and step.outcome is Outcome.NOOP:
        step = Step(Outcome.RESUME, "SpecValid", "the spec is valid again")
    s.observed_generation = ctx.generation
    if step.outcome is not Outcome.NOOP or not s.message:
        s.message = step.message
    set_display_fields(ctx, s)
    if s.phase is not Phase.INVALID:
        s.routing = build_routing(ctx.spec, s)
        s.routing_provider = ctx.spec.routing.provider
    notable = is_notable(s, step)
    if notable:
        append_history(s, ctx.now, step)
    set_conditions(ctx, old, s, step)
    return Decision(
        status=s,
        outcome=step.outcome,
        reason=step.reason,
        message=step.message,
        requeue_after=requeue_after(ctx, s),
        notable=notable,
        analysis=ctx.analysis,
    )
