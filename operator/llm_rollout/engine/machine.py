"""The state machine's entry points (decide, mark_invalid, mark_failed) and the phase
handlers decide runs in order: invalid spec, release change, manual action, pause,
progress."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from llm_rollout.api.actions import ActionKind, ManualAction
from llm_rollout.api.spec import LLMDeploymentSpec, release_info
from llm_rollout.api.status import (
    ACTIVE_PHASES,
    ConditionStatus,
    ConditionType,
    LLMDeploymentStatus,
    PauseReason,
    PauseState,
    Phase,
)
from llm_rollout.engine.analysis import handle_progress
from llm_rollout.engine.conditions import set_condition
from llm_rollout.engine.context import Context, Step, check_now, stage_of
from llm_rollout.engine.record import append_history, finish
from llm_rollout.engine.transitions import (
    advance,
    clear_position,
    position_text,
    promote,
    resume_rollout,
    roll_back,
    start_position,
)
from llm_rollout.engine.types import (
    Decision,
    EvalStates,
    Observation,
    Outcome,
)
from llm_rollout.engine.validate import validate_semantics


def to_invalid(s: LLMDeploymentStatus, problems: list[str], *, old_message: str) -> Step:
    message = "invalid spec: " + "; ".join(problems)
    if s.phase is not Phase.INVALID:
        s.previous_phase = s.phase
        s.phase = Phase.INVALID
    elif message == old_message:
        return Step(Outcome.NOOP, "InvalidSpec", message)
    return Step(Outcome.INVALID, "InvalidSpec", message)


def restore_from_invalid(ctx: Context, s: LLMDeploymentStatus) -> None:
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


def handle_release_change(ctx: Context, s: LLMDeploymentStatus) -> Step | None:
    info = release_info(ctx.spec)
    if s.stable is None:
        s.stable, s.candidate = info, None
        s.phase = Phase.PROMOTED
        clear_position(s)
        return Step(
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
            return Step(
                Outcome.RESUME, "ReleaseAccepted", f"stable release {info.id} is applied again"
            )
        dropped = s.candidate.id
        was_active = s.phase in ACTIVE_PHASES
        s.candidate, s.phase = None, Phase.PROMOTED
        clear_position(s)
        what = "abandoned" if was_active else "cleared"
        return Step(
            Outcome.SUPERSEDE,
            "RevertedToStable",
            f"spec is back at stable release {info.id}; candidate {dropped} {what}",
        )
    if s.candidate is not None and s.candidate.id == info.id:
        return realign(ctx, s)
    superseded = s.candidate.id if s.candidate is not None and s.phase in ACTIVE_PHASES else None
    s.candidate = info
    start_position(ctx, s)
    exposure = (
        f"exposing {position_text(ctx, s)}"
        if s.exposed
        else "paused (spec.paused)"
        if s.phase is Phase.PAUSED
        else f"waiting for release {info.id} to become ready"
    )
    if superseded:
        return Step(
            Outcome.SUPERSEDE,
            "Superseded",
            f"release {info.id} supersedes candidate {superseded}; restarting at the first "
            f"stage, {exposure}",
        )
    return Step(Outcome.START, "NewRelease", f"rollout of release {info.id} started, {exposure}")


def realign(ctx: Context, s: LLMDeploymentStatus) -> Step | None:
    """Keep the position meaningful when the stages changed under a running rollout."""
    stages = ctx.spec.stages
    in_range = 0 <= s.stage_index < len(stages)
    if s.phase not in ACTIVE_PHASES:
        if not in_range:
            s.stage_index, s.step_index = len(stages) - 1, 0
        s.step_index = min(s.step_index, len(stage_of(ctx, s).percents) - 1)
        return None
    if s.stage and not (in_range and stages[s.stage_index].name == s.stage):
        ctx.skip_analysis = True
        names = [st.name for st in stages]
        if s.stage not in names:
            old = s.stage
            start_position(ctx, s)
            return Step(
                Outcome.START,
                "StagesChanged",
                f"stage {old} no longer exists; rollout restarted at the first stage",
            )
        s.stage_index = names.index(s.stage)
    if not 0 <= s.stage_index < len(stages):
        s.stage_index = len(stages) - 1
    last_step = len(stage_of(ctx, s).percents) - 1
    if s.step_index > last_step:
        s.step_index = last_step
        ctx.skip_analysis = True
    return None


def handle_manual_action(
    ctx: Context, s: LLMDeploymentStatus, action: ManualAction | None
) -> Step | None:
    if action is None or action.key == s.last_handled_action:
        return None
    s.last_handled_action = action.key

    def reject(why: str) -> Step:
        return Step(Outcome.REJECT, "ActionRejected", f"action {action.name}: {why}")

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
                return promote(ctx, s, "ManualPromotion", "promote-full action")
            return advance(ctx, s, "ManualPromotion", "promote action")
        case ActionKind.ABORT:
            return roll_back(ctx, s, "Aborted", "abort action")
        case ActionKind.RETRY:
            retryable = s.phase in (Phase.ROLLED_BACK, Phase.FAILED) or (
                s.phase is Phase.PAUSED and error_paused
            )
            if s.candidate is None or not retryable:
                return reject("only a rolled-back, failed or metrics-paused rollout can be retried")
            start_position(ctx, s)
            return Step(
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
                return resume_rollout(ctx, s, reason)
            return Step(Outcome.NOOP, "NothingToResume", "resume: nothing is paused")


def handle_pause(ctx: Context, s: LLMDeploymentStatus) -> Step | None:
    if s.phase not in ACTIVE_PHASES:
        return None
    if ctx.spec.paused:
        if s.pause is None:
            s.phase, s.pause = Phase.PAUSED, PauseState(since=ctx.now, reason=PauseReason.SPEC)
            return Step(Outcome.PAUSE, "PausedBySpec", "rollout paused (spec.paused)")
        if s.pause.reason is not PauseReason.SPEC:
            s.pause = s.pause.model_copy(update={"reason": PauseReason.SPEC})
            return Step(Outcome.PAUSE, "PausedBySpec", "rollout paused (spec.paused)")
        return Step(Outcome.NOOP, "PausedBySpec", "rollout paused (spec.paused)")
    if s.pause is not None and s.pause.reason is PauseReason.SPEC:
        return resume_rollout(ctx, s, "ResumedBySpec")
    if s.phase is Phase.PAUSED:
        return Step(
            Outcome.NOOP,
            "MetricsUnavailable",
            "paused: metrics unavailable; annotate action=resume, retry or abort",
        )
    return None


def decide(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    *,
    now: datetime,
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
    suite (a suite left out has no run yet). `name` names the eval runs (the namespace
    is already rendered into the queries).
    """
    check_now(now)
    ctx = Context(
        spec=spec,
        now=now,
        generation=generation,
        ready=frozenset(ready_releases),
        name=name,
        evals=evals if evals is not None else MappingProxyType({}),
    )
    s = status.model_copy(deep=True)
    if problems := validate_semantics(spec):
        return finish(ctx, status, s, to_invalid(s, problems, old_message=status.message))
    restore_from_invalid(ctx, s)
    step = (
        handle_release_change(ctx, s)
        or handle_manual_action(ctx, s, action)
        or handle_pause(ctx, s)
        or handle_progress(ctx, s, observations)
    )
    return finish(ctx, status, s, step)


def mark_invalid(
    status: LLMDeploymentStatus,
    *,
    now: datetime,
    generation: int,
    problems: list[str],
) -> Decision:
    """Invalid for a spec that does not even parse (pydantic errors): routing unchanged."""
    check_now(now)
    s = status.model_copy(deep=True)
    step = to_invalid(s, problems, old_message=status.message)
    s.observed_generation = generation
    if step.outcome is not Outcome.NOOP or not s.message:
        s.message = step.message
    notable = step.outcome is not Outcome.NOOP
    if notable:
        append_history(s, now, step)
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


def failed_release(s: LLMDeploymentStatus) -> str | None:
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
    check_now(now)
    ctx = Context(spec=spec, now=now, generation=generation, ready=frozenset(ready_releases))
    s = status.model_copy(deep=True)
    info = release_info(spec)
    rejected = f"release {info.id} was rejected by the API server: {message}"
    if action is not None and action.key != s.last_handled_action:
        s.last_handled_action = action.key
        step = Step(
            Outcome.REJECT,
            "ActionRejected",
            f"action {action.name}: {rejected}; fix the release (a new one) first",
        )
    elif s.phase is Phase.FAILED and failed_release(s) == info.id:
        step = Step(Outcome.NOOP, reason, rejected)
    else:
        what = rejected
        if s.candidate is not None and s.candidate.id != info.id and s.phase in ACTIVE_PHASES:
            what += f"; candidate {s.candidate.id} abandoned"
        if s.stable is not None and s.stable.id != info.id:
            what += f"; traffic stays on stable release {s.stable.id}"
        step = Step(Outcome.FAIL, reason, what)
    if s.phase is not Phase.FAILED or failed_release(s) != info.id:
        s.candidate = None if s.stable is not None and s.stable.id == info.id else info
        s.phase = Phase.FAILED
        clear_position(s)
    return finish(ctx, status, s, step)
