"""Moves of a rollout's position: start, expose, advance, promote, roll back, resume."""

from __future__ import annotations

from llm_rollout.api.durations import format_duration
from llm_rollout.api.spec import LLMDeploymentSpec
from llm_rollout.api.status import (
    LLMDeploymentStatus,
    PauseReason,
    PauseState,
    Phase,
)
from llm_rollout.engine.context import Context, Step, stage_of
from llm_rollout.engine.types import (
    Outcome,
)


def next_position(
    spec: LLMDeploymentSpec, stage_index: int, step_index: int
) -> tuple[int, int] | None:
    """The (stage, step) after the given one; None: the rollout is complete."""
    if step_index + 1 < len(spec.stages[stage_index].percents):
        return stage_index, step_index + 1
    if stage_index + 1 < len(spec.stages):
        return stage_index + 1, 0
    return None


def start_position(ctx: Context, s: LLMDeploymentStatus) -> None:
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
    expose_if_ready(ctx, s)


def clear_position(s: LLMDeploymentStatus) -> None:
    s.stage_index = s.step_index = 0
    s.exposed = False
    s.stage_start_time = s.step_start_time = s.evidence_start_time = None
    s.gates = []
    s.sample_ratio = None
    s.evals = []
    s.consecutive_errors = 0
    s.pause = None


def expose_if_ready(ctx: Context, s: LLMDeploymentStatus) -> bool:
    if s.exposed or s.phase is not Phase.PROGRESSING or s.candidate is None:
        return False
    if s.candidate.id not in ctx.ready:
        return False
    s.exposed = True
    s.step_start_time = s.evidence_start_time = ctx.now
    if s.step_index == 0:
        s.stage_start_time = ctx.now
    return True


def position_text(ctx: Context, s: LLMDeploymentStatus) -> str:
    stage = stage_of(ctx, s)
    percents = stage.percents
    return f"stage {stage.name} step {s.step_index + 1}/{len(percents)} ({percents[s.step_index]}%)"


def promote(ctx: Context, s: LLMDeploymentStatus, reason: str, why: str) -> Step:
    assert s.candidate is not None
    promoted = s.candidate
    s.stable, s.candidate = promoted, None
    s.phase = Phase.PROMOTED
    clear_position(s)
    return Step(Outcome.PROMOTE, reason, f"release {promoted.id} promoted to stable: {why}")


def roll_back(ctx: Context, s: LLMDeploymentStatus, reason: str, why: str) -> Step:
    assert s.candidate is not None
    s.phase = Phase.ROLLED_BACK
    s.exposed = False
    s.pause = None
    return Step(Outcome.ROLLBACK, reason, f"release {s.candidate.id} rolled back: {why}")


def advance(ctx: Context, s: LLMDeploymentStatus, reason: str, why: str) -> Step:
    """Next step, next stage, or promotion; the candidate must be ready."""
    assert s.candidate is not None
    if s.candidate.id not in ctx.ready:
        return Step(
            Outcome.HOLD,
            "WaitingForRelease",
            f"{why}, but release {s.candidate.id} is not ready; waiting before advancing",
        )
    position = next_position(ctx.spec, s.stage_index, s.step_index)
    if position is None:
        return promote(ctx, s, reason, why)
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
    return Step(Outcome.ADVANCE, reason, f"{why}: advanced to {position_text(ctx, s)}")


def resume_rollout(ctx: Context, s: LLMDeploymentStatus, reason: str) -> Step:
    assert s.pause is not None
    paused = ctx.now - s.pause.since
    # Paused time does not count towards minDuration / maxDuration.
    if s.step_start_time is not None:
        s.step_start_time += paused
    if s.stage_start_time is not None:
        s.stage_start_time += paused
    s.phase, s.pause = Phase.PROGRESSING, None
    s.consecutive_errors = 0
    return Step(
        Outcome.RESUME,
        reason,
        f"resumed after {format_duration(max(paused.total_seconds(), 0))} paused",
    )
