"""The rollout state machine: (spec, status, observations, now) -> Decision.

Pure: no I/O, no clock, no randomness. The input status is never mutated. Each
call handles, in order, the first of these that applies:

1. the spec is semantically invalid -> Invalid (routing left as it was);
2. the release changed -> first release promoted directly / Start / Supersede /
   back at stable; the stage list changed under a running rollout -> realign;
3. a manual action not yet handled -> promote, promote-full, abort, retry, resume;
4. spec.paused -> Pause / (un-paused) Resume;
5. progress: wait for the candidate's pods, soak, analyse gates (and the state of
   the stage's eval runs), advance, promote, roll back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from llm_rollout.api.actions import ActionKind, ManualAction
from llm_rollout.api.durations import format_duration
from llm_rollout.api.spec import LLMDeploymentSpec, OnMetricsUnavailable, Stage, release_info
from llm_rollout.api.status import (
    ACTIVE_PHASES,
    ConditionStatus,
    ConditionType,
    HistoryEntry,
    LLMDeploymentStatus,
    PauseReason,
    PauseState,
    Phase,
    Verdict,
)
from llm_rollout.engine.conditions import set_condition
from llm_rollout.engine.evals import EvalAssessment, assess_evals
from llm_rollout.engine.gates import evaluate_stage
from llm_rollout.engine.history import record as record_history
from llm_rollout.engine.plan import current_stage
from llm_rollout.engine.routing import build_routing
from llm_rollout.engine.sample_ratio import check_sample_ratio
from llm_rollout.engine.types import (
    Decision,
    EvalStates,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Outcome,
)
from llm_rollout.engine.validate import validate_semantics

# An analysis is due this share of an interval early, so a timer firing a little
# early does not skip a whole interval.
ANALYSIS_TOLERANCE = 0.02


@dataclass(frozen=True)
class _Step:
    outcome: Outcome
    reason: str
    message: str


@dataclass
class _Ctx:
    spec: LLMDeploymentSpec
    now: datetime
    generation: int
    ready: frozenset[str]
    name: str = ""
    evals: EvalStates = field(default_factory=lambda: MappingProxyType({}))
    # The current stage's eval suites as judged in this call (None: not looked at).
    assessment: EvalAssessment | None = None
    analysed: bool = False  # gates were evaluated in this call
    metrics_broken: bool = False  # ... and some gate's metrics were broken (Error)
    restored: bool = False  # the spec stopped being Invalid in this call
    # The observations were planned for another position (restored, realigned): skip.
    skip_analysis: bool = False
    notes: list[str] = field(default_factory=list)


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


# --- queries on state ----------------------------------------------------------------


def _interval_reference(status: LLMDeploymentStatus) -> datetime | None:
    """What the next analysis is an interval after: the step's last analysis, or the
    step's (pause-shifted) start when there is none since."""
    start, last = status.step_start_time, status.last_analysis_time
    if start is None or last is None:
        return start
    return max(start, last)


def analysis_due(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime) -> bool:
    """Whether the next call would evaluate gates (so the caller should query metrics).

    Due one analysis interval after the step began or after the step's last analysis
    (never at the step's start, which has no evidence yet), and also right when the
    step's minDuration ends, so a step whose gates already pass advances then rather
    than up to an interval later. Looks may run up to ANALYSIS_TOLERANCE of an interval
    early (timer slack); confidence sequences stay valid at any number of looks.
    """
    start = status.step_start_time  # shifted by pauses, like minDuration
    last = status.last_analysis_time
    if last is not None and last > now:  # the clock went back: do not stall
        return True
    if start is None:
        return last is None
    began = status.evidence_start_time or start  # when the step really began
    if last is not None and last < began:
        last = None  # an analysis of an earlier step
    since = _interval_reference(status)
    assert since is not None
    if _seconds(since, now) >= spec.analysis.interval_seconds * (1 - ANALYSIS_TOLERANCE):
        return True
    stage = current_stage(spec, status)
    if stage is None or stage.min_seconds <= 0:
        return False
    soaked_at = start + timedelta(seconds=stage.min_seconds)
    return (last is None or last < soaked_at) and soaked_at <= now


def next_position(
    spec: LLMDeploymentSpec, stage_index: int, step_index: int
) -> tuple[int, int] | None:
    """The (stage, step) after the given one; None: the rollout is complete."""
    if step_index + 1 < len(spec.stages[stage_index].percents):
        return stage_index, step_index + 1
    if stage_index + 1 < len(spec.stages):
        return stage_index + 1, 0
    return None


def _step_elapsed(ctx: _Ctx, s: LLMDeploymentStatus) -> float:
    return _seconds(s.step_start_time, ctx.now) if s.step_start_time else 0.0


def _stage(ctx: _Ctx, s: LLMDeploymentStatus) -> Stage:
    stage = current_stage(ctx.spec, s)
    assert stage is not None  # positions are kept in range by _realign
    return stage


# --- transitions ---------------------------------------------------------------------


def _start_position(ctx: _Ctx, s: LLMDeploymentStatus) -> None:
    s.stage_index = s.step_index = 0
    s.exposed = False
    s.stage_start_time = s.step_start_time = s.evidence_start_time = ctx.now
    s.gates = []
    s.sample_ratio = None
    s.evals = []
    s.attempt += 1  # a new attempt: its eval runs are new objects
    s.consecutive_errors = 0
    s.last_analysis_time = None
    if ctx.spec.paused:
        s.phase, s.pause = Phase.PAUSED, PauseState(since=ctx.now, reason=PauseReason.SPEC)
    else:
        s.phase, s.pause = Phase.PROGRESSING, None
    _expose_if_ready(ctx, s)


def _clear_position(s: LLMDeploymentStatus) -> None:
    s.stage_index = s.step_index = 0
    s.exposed = False
    s.stage_start_time = s.step_start_time = s.evidence_start_time = None
    s.gates = []
    s.sample_ratio = None
    s.evals = []
    s.consecutive_errors = 0
    s.pause = None


def _expose_if_ready(ctx: _Ctx, s: LLMDeploymentStatus) -> bool:
    if s.exposed or s.phase is not Phase.PROGRESSING or s.candidate is None:
        return False
    if s.candidate.id not in ctx.ready:
        return False
    s.exposed = True
    s.step_start_time = s.evidence_start_time = ctx.now
    if s.step_index == 0:
        s.stage_start_time = ctx.now
    return True


def _where(ctx: _Ctx, s: LLMDeploymentStatus) -> str:
    stage = _stage(ctx, s)
    percents = stage.percents
    return f"stage {stage.name} step {s.step_index + 1}/{len(percents)} ({percents[s.step_index]}%)"


def _promote(ctx: _Ctx, s: LLMDeploymentStatus, reason: str, why: str) -> _Step:
    assert s.candidate is not None
    promoted = s.candidate
    s.stable, s.candidate = promoted, None
    s.phase = Phase.PROMOTED
    _clear_position(s)
    return _Step(Outcome.PROMOTE, reason, f"release {promoted.id} promoted to stable: {why}")


def _rollback(ctx: _Ctx, s: LLMDeploymentStatus, reason: str, why: str) -> _Step:
    assert s.candidate is not None
    s.phase = Phase.ROLLED_BACK
    s.exposed = False
    s.pause = None
    return _Step(Outcome.ROLLBACK, reason, f"release {s.candidate.id} rolled back: {why}")


def _advance(ctx: _Ctx, s: LLMDeploymentStatus, reason: str, why: str) -> _Step:
    """Next step, next stage, or promotion; the candidate must be ready."""
    assert s.candidate is not None
    if s.candidate.id not in ctx.ready:
        return _Step(
            Outcome.HOLD,
            "WaitingForRelease",
            f"{why}, but release {s.candidate.id} is not ready; waiting before advancing",
        )
    position = next_position(ctx.spec, s.stage_index, s.step_index)
    if position is None:
        return _promote(ctx, s, reason, why)
    new_stage = position[0] != s.stage_index
    s.stage_index, s.step_index = position
    s.exposed = True
    s.step_start_time = s.evidence_start_time = ctx.now
    if new_stage:
        s.stage_start_time = ctx.now
        s.evals = []
    if s.pause is not None:  # promoted while paused: timers restart now, pause counts from now
        s.pause = s.pause.model_copy(update={"since": ctx.now})
    s.gates = []
    s.sample_ratio = None
    s.consecutive_errors = 0
    return _Step(Outcome.ADVANCE, reason, f"{why}: advanced to {_where(ctx, s)}")


def _resume(ctx: _Ctx, s: LLMDeploymentStatus, reason: str) -> _Step:
    assert s.pause is not None
    paused = ctx.now - s.pause.since
    # Paused time does not count towards minDuration / maxDuration.
    if s.step_start_time is not None:
        s.step_start_time += paused
    if s.stage_start_time is not None:
        s.stage_start_time += paused
    s.phase, s.pause = Phase.PROGRESSING, None
    s.consecutive_errors = 0
    return _Step(
        Outcome.RESUME,
        reason,
        f"resumed after {format_duration(max(paused.total_seconds(), 0))} paused",
    )


# --- the handlers, in order ----------------------------------------------------------


def _invalid(s: LLMDeploymentStatus, problems: list[str], *, old_message: str) -> _Step:
    message = "invalid spec: " + "; ".join(problems)
    if s.phase is not Phase.INVALID:
        s.previous_phase = s.phase
        s.phase = Phase.INVALID
    elif message == old_message:
        return _Step(Outcome.NOOP, "InvalidSpec", message)
    return _Step(Outcome.INVALID, "InvalidSpec", message)


def _restore_from_invalid(ctx: _Ctx, s: LLMDeploymentStatus) -> None:
    if s.phase is not Phase.INVALID:
        return
    s.phase, s.previous_phase = s.previous_phase, None
    ctx.skip_analysis = True
    if s.phase is None and s.stable is not None:
        s.phase = Phase.PROMOTED
    if s.phase in ACTIVE_PHASES:
        # The step soaks anew under the fixed spec, on new evidence.
        s.step_start_time = s.evidence_start_time = ctx.now
        s.gates = []
        s.consecutive_errors = 0
    ctx.restored = True


def _release_change(ctx: _Ctx, s: LLMDeploymentStatus) -> _Step | None:
    info = release_info(ctx.spec)
    if s.stable is None:
        s.stable, s.candidate = info, None
        s.phase = Phase.PROMOTED
        _clear_position(s)
        return _Step(
            Outcome.PROMOTE,
            "FirstRelease",
            f"first release {info.id} promoted directly (no stable release to compare with)",
        )
    if info.id == s.stable.id:
        if s.candidate is None:
            if s.phase is not Phase.FAILED:
                return None
            # Stable's own objects were rejected (mark_failed) and are accepted now.
            s.phase = Phase.PROMOTED
            return _Step(
                Outcome.RESUME, "ReleaseAccepted", f"stable release {info.id} is applied again"
            )
        dropped = s.candidate.id
        was_active = s.phase in ACTIVE_PHASES
        s.candidate, s.phase = None, Phase.PROMOTED
        _clear_position(s)
        what = "abandoned" if was_active else "cleared"
        return _Step(
            Outcome.SUPERSEDE,
            "RevertedToStable",
            f"spec is back at stable release {info.id}; candidate {dropped} {what}",
        )
    if s.candidate is not None and s.candidate.id == info.id:
        return _realign(ctx, s)
    superseded = s.candidate.id if s.candidate is not None and s.phase in ACTIVE_PHASES else None
    s.candidate = info
    _start_position(ctx, s)
    exposure = (
        f"exposing {_where(ctx, s)}"
        if s.exposed
        else "paused (spec.paused)"
        if s.phase is Phase.PAUSED
        else f"waiting for release {info.id} to become ready"
    )
    if superseded:
        return _Step(
            Outcome.SUPERSEDE,
            "Superseded",
            f"release {info.id} supersedes candidate {superseded}; restarting at the first "
            f"stage, {exposure}",
        )
    return _Step(Outcome.START, "NewRelease", f"rollout of release {info.id} started, {exposure}")


def _realign(ctx: _Ctx, s: LLMDeploymentStatus) -> _Step | None:
    """Keep the position meaningful when the stages changed under a running rollout."""
    stages = ctx.spec.stages
    in_range = 0 <= s.stage_index < len(stages)
    if s.phase not in ACTIVE_PHASES:
        if not in_range:
            s.stage_index, s.step_index = len(stages) - 1, 0
        s.step_index = min(s.step_index, len(_stage(ctx, s).percents) - 1)
        return None
    if s.stage and not (in_range and stages[s.stage_index].name == s.stage):
        ctx.skip_analysis = True
        names = [st.name for st in stages]
        if s.stage not in names:
            old = s.stage
            _start_position(ctx, s)
            return _Step(
                Outcome.START,
                "StagesChanged",
                f"stage {old} no longer exists; rollout restarted at the first stage",
            )
        s.stage_index = names.index(s.stage)
    if not 0 <= s.stage_index < len(stages):
        s.stage_index = len(stages) - 1
    last_step = len(_stage(ctx, s).percents) - 1
    if s.step_index > last_step:
        s.step_index = last_step
        ctx.skip_analysis = True
    return None


def _manual_action(ctx: _Ctx, s: LLMDeploymentStatus, action: ManualAction | None) -> _Step | None:
    if action is None or action.key == s.last_handled_action:
        return None
    s.last_handled_action = action.key

    def reject(why: str) -> _Step:
        return _Step(Outcome.REJECT, "ActionRejected", f"action {action.name}: {why}")

    kind = action.kind
    if kind is None:
        known = ", ".join(k.value for k in ActionKind)
        return reject(f"unknown action (known: {known})")
    active = s.phase in ACTIVE_PHASES and s.candidate is not None
    error_paused = s.pause is not None and s.pause.reason is PauseReason.METRICS_UNAVAILABLE
    if kind in (ActionKind.PROMOTE, ActionKind.PROMOTE_FULL, ActionKind.ABORT) and not active:
        return reject("no rollout in progress")
    match kind:
        case ActionKind.PROMOTE | ActionKind.PROMOTE_FULL:
            assert s.candidate is not None
            if s.candidate.id not in ctx.ready:
                return reject(f"release {s.candidate.id} is not ready")
            if error_paused:
                s.phase, s.pause = Phase.PROGRESSING, None
            if kind is ActionKind.PROMOTE_FULL:
                return _promote(ctx, s, "ManualPromotion", "promote-full action")
            return _advance(ctx, s, "ManualPromotion", "promote action")
        case ActionKind.ABORT:
            return _rollback(ctx, s, "Aborted", "abort action")
        case ActionKind.RETRY:
            retryable = s.phase in (Phase.ROLLED_BACK, Phase.FAILED) or (
                s.phase is Phase.PAUSED and error_paused
            )
            if s.candidate is None or not retryable:
                return reject("only a rolled-back, failed or metrics-paused rollout can be retried")
            _start_position(ctx, s)
            return _Step(
                Outcome.RETRY,
                "Retried",
                f"rollout of release {s.candidate.id} restarted at the first stage",
            )
        case ActionKind.RESUME:
            # `llm-rollout resume` sends this together with spec.paused: false.
            if s.phase is Phase.PAUSED and s.pause is not None:
                if ctx.spec.paused:
                    if error_paused:
                        s.pause = s.pause.model_copy(update={"reason": PauseReason.SPEC})
                    return reject("spec.paused is true; set it to false to resume")
                reason = "Resumed" if error_paused else "ResumedBySpec"
                return _resume(ctx, s, reason)
            return _Step(Outcome.NOOP, "NothingToResume", "resume: nothing is paused")


def _pause(ctx: _Ctx, s: LLMDeploymentStatus) -> _Step | None:
    if s.phase not in ACTIVE_PHASES:
        return None
    if ctx.spec.paused:
        if s.pause is None:
            s.phase, s.pause = Phase.PAUSED, PauseState(since=ctx.now, reason=PauseReason.SPEC)
            return _Step(Outcome.PAUSE, "PausedBySpec", "rollout paused (spec.paused)")
        if s.pause.reason is not PauseReason.SPEC:
            s.pause = s.pause.model_copy(update={"reason": PauseReason.SPEC})
            return _Step(Outcome.PAUSE, "PausedBySpec", "rollout paused (spec.paused)")
        return _Step(Outcome.NOOP, "PausedBySpec", "rollout paused (spec.paused)")
    if s.pause is not None and s.pause.reason is PauseReason.SPEC:
        return _resume(ctx, s, "ResumedBySpec")
    if s.phase is Phase.PAUSED:
        return _Step(
            Outcome.NOOP,
            "MetricsUnavailable",
            "paused: metrics unavailable; annotate action=resume, retry or abort",
        )
    return None


def _progress(ctx: _Ctx, s: LLMDeploymentStatus, observations: Mapping[str, Observation]) -> _Step:
    if s.phase is not Phase.PROGRESSING or s.candidate is None:
        return _Step(Outcome.NOOP, "Idle", "no rollout in progress")
    stage = _stage(ctx, s)
    candidate = s.candidate.id
    elapsed = _step_elapsed(ctx, s)
    max_seconds = stage.max_seconds
    over_max = max_seconds is not None and elapsed > max_seconds
    max_text = f"maxDuration {stage.max_duration} of {_where(ctx, s)} exceeded"
    if not s.exposed:
        if _expose_if_ready(ctx, s):
            return _Step(
                Outcome.ADVANCE,
                "ReleaseReady",
                f"release {candidate} ready: exposing {_where(ctx, s)}",
            )
        if over_max:
            return _rollback(ctx, s, "ReleaseNotReady", f"{max_text} waiting for its pods")
        return _Step(
            Outcome.HOLD, "WaitingForRelease", f"waiting for release {candidate} to become ready"
        )
    soaked = elapsed >= stage.min_seconds
    assessment = assess_evals(ctx.spec, s, stage, ctx.evals, name=ctx.name, now=ctx.now)
    if assessment is not None:
        ctx.assessment = assessment
        s.evals = assessment.statuses
    if not stage.gates and assessment is None:
        if soaked:
            return _advance(ctx, s, "MinDurationElapsed", f"{_where(ctx, s)} soaked")
        return _Step(Outcome.NOOP, "Soaking", f"soaking {_where(ctx, s)}")
    if ctx.skip_analysis or not analysis_due(ctx.spec, s, ctx.now):
        if over_max:
            return _rollback(ctx, s, "MaxDurationExceeded", max_text)
        return _Step(Outcome.NOOP, "WaitingForAnalysis", "next analysis not due yet")
    return _analyse(
        ctx,
        s,
        stage,
        observations,
        soaked=soaked,
        over_max=over_max,
        max_text=max_text,
        assessment=assessment,
    )


# Within this long after the stage's eval runs finished, an empty series is not yet a
# missing metric: their scores reach Prometheus with the next scrape of the operator.
EVAL_SCRAPE_GRACE_SECONDS = 60.0


def _metrics_settled(ctx: _Ctx, assessment: EvalAssessment | None) -> bool:
    if assessment is None:
        return True
    if not assessment.done:
        return False
    if assessment.settled_at is None:
        return True
    grace = max(2 * ctx.spec.analysis.interval_seconds, EVAL_SCRAPE_GRACE_SECONDS)
    return _seconds(assessment.settled_at, ctx.now) >= grace


def _missing_after_soak(
    stage: Stage, observations: Mapping[str, Observation]
) -> Mapping[str, Observation]:
    """No series at all for a gate's candidate metrics, still after minDuration: the
    metric is missing (not exported, not scraped, misspelt), not merely pending.

    Early in a step an empty answer is ordinary (no traffic yet) and only holds; past
    the soak it counts as an error, so errorLimit pauses the rollout instead of
    letting it hold until maxDuration.
    """
    patched = dict(observations)
    for gate in stage.gates:
        keys = [k for k in observations if k.startswith(f"{gate.name}/") and "/candidate/" in k]
        empty = [observations[k] for k in keys]
        if keys and all(
            isinstance(o, ObservationError) and o.kind == ObservationErrorKind.EMPTY
            for o in empty
        ):
            for key in keys:
                patched[key] = ObservationError(
                    ObservationErrorKind.MISSING,
                    "no series after minDuration: is the metric exported and scraped?",
                )
    return patched


def _analyse(
    ctx: _Ctx,
    s: LLMDeploymentStatus,
    stage: Stage,
    observations: Mapping[str, Observation],
    *,
    soaked: bool,
    over_max: bool,
    max_text: str,
    assessment: EvalAssessment | None = None,
) -> _Step:
    analysis = ctx.spec.analysis
    if soaked and _metrics_settled(ctx, assessment):
        observations = _missing_after_soak(stage, observations)
    results = evaluate_stage(ctx.spec, stage, observations, s.gates)
    s.gates = results
    s.sample_ratio = check_sample_ratio(ctx.spec, s, observations, ctx.now)
    s.last_analysis_time = ctx.now
    ctx.analysed = True
    errored = [r for r in results if r.verdict is Verdict.ERROR]
    ctx.metrics_broken = bool(errored)
    eval_errors = assessment.error_text() if assessment is not None else ""
    evals_pending = assessment.pending_text() if assessment is not None else ""
    srm = s.sample_ratio
    mismatch = srm.message if srm is not None and srm.verdict is Verdict.ERROR else ""
    s.consecutive_errors = s.consecutive_errors + 1 if errored or eval_errors or mismatch else 0

    def summary(rs: list[str]) -> str:
        return "; ".join(rs)

    if failed := [r for r in results if r.consecutive_failures >= analysis.failure_limit]:
        why = summary(
            [
                f"gate {r.name} failed {r.consecutive_failures} analyses ({r.message})"
                for r in failed
            ]
        )
        return _rollback(ctx, s, "GateFailed", why)
    if over_max:
        # Past maxDuration without a pass inside it: a pass now comes too late.
        return _rollback(ctx, s, "MaxDurationExceeded", max_text)
    if errored or eval_errors or mismatch:
        why = summary([f"gate {r.name}: {r.message}" for r in errored])
        if errored:
            ctx.notes.append(why)
        why = summary([w for w in (why, eval_errors, mismatch) if w])
        # Failed or timed-out eval runs, and a traffic split the routing does not
        # explain, go through the same error policy as broken metrics: the evidence
        # cannot be trusted, so the rollout must not move on it.
        reason, what = ("MetricsUnavailable", "metrics unavailable")
        if not errored:
            reason, what = (
                ("EvalFailed", "eval failed") if eval_errors
                else ("SampleRatioMismatch", "sample ratio mismatch")
            )
        if s.consecutive_errors >= analysis.error_limit:
            limit = f"{what} for {s.consecutive_errors} analyses ({why})"
            if analysis.on_metrics_unavailable is OnMetricsUnavailable.ROLLBACK:
                return _rollback(ctx, s, reason, limit)
            s.phase = Phase.PAUSED
            s.pause = PauseState(since=ctx.now, reason=PauseReason.METRICS_UNAVAILABLE)
            return _Step(Outcome.PAUSE, reason, f"paused: {limit}")
        return _Step(
            Outcome.HOLD,
            reason,
            f"holding: {what} ({s.consecutive_errors}/{analysis.error_limit}): {why}",
        )
    if all(r.verdict is Verdict.PASS for r in results):
        if evals_pending:
            return _Step(
                Outcome.HOLD, "WaitingForEvals", f"holding: waiting for eval suites {evals_pending}"
            )
        if soaked:
            return _advance(ctx, s, "GatesPassed", f"all gates pass at {_where(ctx, s)}")
        left = format_duration(max(stage.min_seconds - _step_elapsed(ctx, s), 0))
        return _Step(Outcome.HOLD, "MinDuration", f"all gates pass; {left} of minDuration left")
    if failing := [r for r in results if r.verdict is Verdict.FAIL]:
        why = summary(
            [
                f"gate {r.name} failing ({r.consecutive_failures}/{analysis.failure_limit}): "
                f"{r.message}"
                for r in failing
            ]
        )
        return _Step(Outcome.HOLD, "GateFailing", f"holding: {why}")
    pending = [r for r in results if r.verdict is not Verdict.PASS]
    why = summary([f"gate {r.name}: {r.message}" for r in pending])
    if evals_pending:
        return _Step(
            Outcome.HOLD,
            "WaitingForEvals",
            f"holding: waiting for eval suites {evals_pending}; {why}",
        )
    return _Step(Outcome.HOLD, "Inconclusive", f"holding, inconclusive: {why}")


# --- finishing: display fields, routing, conditions, history -------------------------


def _display(ctx: _Ctx, s: LLMDeploymentStatus) -> None:
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


def _conditions(ctx: _Ctx, old: LLMDeploymentStatus, s: LLMDeploymentStatus, step: _Step) -> None:
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

    if ctx.analysed:
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
    _eval_condition(ctx, old, s, put)


def _eval_condition(
    ctx: _Ctx,
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
    elif old.condition(kind) is None or _waiting_to_evaluate(ctx, s):
        put(kind, None, "NotEvaluated", "no eval suite has run in this rollout yet")


def _waiting_to_evaluate(ctx: _Ctx, s: LLMDeploymentStatus) -> bool:
    """A rollout whose current stage has suites, before its candidate is exposed there
    (the condition must not keep speaking of an earlier rollout)."""
    stage = current_stage(ctx.spec, s)
    return (
        s.phase is Phase.PROGRESSING
        and not s.exposed
        and stage is not None
        and bool(ctx.spec.suites_at(stage.name))
    )


def _notable(s: LLMDeploymentStatus, step: _Step) -> bool:
    if step.outcome is Outcome.NOOP:
        return False
    if step.outcome is not Outcome.HOLD:
        return True
    last = s.history[-1] if s.history else None
    return last is None or last.decision != Outcome.HOLD.value or last.reason != step.reason


def _requeue_after(ctx: _Ctx, s: LLMDeploymentStatus) -> float | None:
    """Seconds until time alone changes something (None: only a change will)."""
    if s.phase is not Phase.PROGRESSING:
        return None
    interval = ctx.spec.analysis.interval_seconds
    if not s.exposed:
        return interval  # poll for readiness as well as being told
    stage = _stage(ctx, s)
    elapsed = _step_elapsed(ctx, s)
    waits = []
    if elapsed < stage.min_seconds:
        waits.append(stage.min_seconds - elapsed)
    if stage.max_seconds is not None and elapsed <= stage.max_seconds:
        waits.append(stage.max_seconds - elapsed + 1e-3)
    if stage.gates or ctx.spec.suites_at(stage.name):
        since = _interval_reference(s)
        waits.append(0.0 if since is None else interval - _seconds(since, ctx.now))
    return max(min(waits), 0.0) if waits else None


def _finish(ctx: _Ctx, old: LLMDeploymentStatus, s: LLMDeploymentStatus, step: _Step) -> Decision:
    if ctx.restored and step.outcome is Outcome.NOOP:
        step = _Step(Outcome.RESUME, "SpecValid", "the spec is valid again")
    s.observed_generation = ctx.generation
    if step.outcome is not Outcome.NOOP or not s.message:
        s.message = step.message
    _display(ctx, s)
    if s.phase is not Phase.INVALID:
        s.routing = build_routing(ctx.spec, s)
        s.routing_provider = ctx.spec.routing.provider
    notable = _notable(s, step)
    if notable:
        entry = HistoryEntry(
            time=ctx.now,
            decision=step.outcome.value,
            release=s.candidate.id if s.candidate else (s.stable.id if s.stable else ""),
            stage=s.stage,
            step=s.step_index,
            reason=step.reason,
            message=step.message,
        )
        s.history = record_history(s.history, entry)
    _conditions(ctx, old, s, step)
    return Decision(
        status=s,
        outcome=step.outcome,
        reason=step.reason,
        message=step.message,
        requeue_after=_requeue_after(ctx, s),
        notable=notable,
    )


# --- entry points --------------------------------------------------------------------


def decide(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    *,
    now: datetime,
    namespace: str,
    name: str,
    generation: int,
    observations: Mapping[str, Observation],
    ready_releases: frozenset[str],
    action: ManualAction | None = None,
    evals: EvalStates | None = None,
) -> Decision:
    """The next decision for one LLMDeployment.

    `observations` answer `plan_queries(spec, status, namespace, name, now=now)` (keyed by
    MetricQuery.key); they are only read when an analysis is due (`analysis_due`).
    `ready_releases` are the release ids whose pods are ready. `evals` are the
    states of the runs `required_eval_runs(spec, status, name)` asked for, keyed by
    suite (a suite left out has no run yet). `namespace` only matters to the
    queries; `name` also names the eval runs.
    """
    del namespace  # the plan already rendered it into the queries
    _check_now(now)
    ctx = _Ctx(
        spec=spec,
        now=now,
        generation=generation,
        ready=frozenset(ready_releases),
        name=name,
        evals=evals if evals is not None else MappingProxyType({}),
    )
    s = status.model_copy(deep=True)
    if problems := validate_semantics(spec):
        return _finish(ctx, status, s, _invalid(s, problems, old_message=status.message))
    _restore_from_invalid(ctx, s)
    step = (
        _release_change(ctx, s)
        or _manual_action(ctx, s, action)
        or _pause(ctx, s)
        or _progress(ctx, s, observations)
    )
    return _finish(ctx, status, s, step)


def mark_invalid(
    status: LLMDeploymentStatus,
    *,
    now: datetime,
    generation: int,
    problems: list[str],
) -> Decision:
    """Invalid for a spec that does not even parse (pydantic errors): routing unchanged."""
    _check_now(now)
    s = status.model_copy(deep=True)
    step = _invalid(s, problems, old_message=status.message)
    s.observed_generation = generation
    if step.outcome is not Outcome.NOOP or not s.message:
        s.message = step.message
    notable = step.outcome is not Outcome.NOOP
    if notable:
        entry = HistoryEntry(
            time=now,
            decision=step.outcome.value,
            release=s.release,
            stage=s.stage,
            step=s.step_index,
            reason=step.reason,
            message=step.message,
        )
        s.history = record_history(s.history, entry)
    s.conditions = set_condition(
        s.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        step.reason,
        s.message,
        now=now,
        generation=generation,
    )
    s.conditions = set_condition(
        s.conditions,
        ConditionType.PROGRESSING,
        ConditionStatus.FALSE,
        "Invalid",
        s.message,
        now=now,
        generation=generation,
    )
    return Decision(
        status=s, outcome=step.outcome, reason=step.reason, message=step.message, notable=notable
    )


def _failed_release(s: LLMDeploymentStatus) -> str | None:
    """The release a Failed status is about: the candidate, else stable's own objects."""
    if s.candidate is not None:
        return s.candidate.id
    return s.stable.id if s.stable is not None else None


def mark_failed(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    *,
    now: datetime,
    generation: int,
    reason: str,
    message: str,
    ready_releases: frozenset[str] = frozenset(),
    action: ManualAction | None = None,
) -> Decision:
    """Failed: the API server rejected the spec's release (its Deployment or Service).

    Whatever the phase (a first release, a new release on a Promoted deployment, one
    that supersedes a running candidate), the rejected release becomes the candidate and
    status names it; nothing of it is exposed and traffic stays on (or goes back to)
    stable. A new release, or `retry` once the cause is gone, starts again. A manual
    action that arrives meanwhile is answered (an Event), never silently dropped.
    """
    _check_now(now)
    ctx = _Ctx(spec=spec, now=now, generation=generation, ready=frozenset(ready_releases))
    s = status.model_copy(deep=True)
    info = release_info(spec)
    rejected = f"release {info.id} was rejected by the API server: {message}"
    if action is not None and action.key != s.last_handled_action:
        s.last_handled_action = action.key
        step = _Step(
            Outcome.REJECT,
            "ActionRejected",
            f"action {action.name}: {rejected}; fix the release (a new one) first",
        )
    elif s.phase is Phase.FAILED and _failed_release(s) == info.id:
        step = _Step(Outcome.NOOP, reason, rejected)
    else:
        what = rejected
        if s.candidate is not None and s.candidate.id != info.id and s.phase in ACTIVE_PHASES:
            what += f"; candidate {s.candidate.id} abandoned"
        if s.stable is not None and s.stable.id != info.id:
            what += f"; traffic stays on stable release {s.stable.id}"
        step = _Step(Outcome.FAIL, reason, what)
    if s.phase is not Phase.FAILED or _failed_release(s) != info.id:
        s.candidate = None if s.stable is not None and s.stable.id == info.id else info
        s.phase = Phase.FAILED
        _clear_position(s)
    return _finish(ctx, status, s, step)
