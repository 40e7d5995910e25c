"""What one call of the engine works with: the spec, the time, what is ready, and
what this call found out (Context); the Step a handler returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from llm_rollout.api.spec import LLMDeploymentSpec, Stage
from llm_rollout.api.status import (
    LLMDeploymentStatus,
)
from llm_rollout.engine.evals import EvalAssessment
from llm_rollout.engine.plan import current_stage
from llm_rollout.engine.types import (
    AnalysisResult,
    EvalStates,
    Outcome,
)


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    reason: str
    message: str


@dataclass
class Context:
    spec: LLMDeploymentSpec
    now: datetime
    generation: int
    ready: frozenset[str]
    name: str = ""
    evals: EvalStates = field(default_factory=lambda: MappingProxyType({}))
    # The current stage's eval suites as judged in this call (None: not looked at).
    assessment: EvalAssessment | None = None
    analysis: AnalysisResult | None = None  # what this call's analysis found, if one ran
    metrics_broken: bool = False  # ... and some gate's metrics were broken (Error)
    restored: bool = False  # the spec stopped being Invalid in this call
    # The observations were planned for another position (restored, realigned): skip.
    skip_analysis: bool = False
    notes: list[str] = field(default_factory=list)


def seconds_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def step_elapsed(ctx: Context, s: LLMDeploymentStatus) -> float:
    return seconds_between(s.step_start_time, ctx.now) if s.step_start_time else 0.0


def stage_of(ctx: Context, s: LLMDeploymentStatus) -> Stage:
    stage = current_stage(ctx.spec, s)
    assert stage is not None  # positions are kept in range by realign
    return stage
