"""Eval suites in the rollout (pure): which runs the current stage needs, and what the
states of those runs mean for the stage.

The caller creates an LLMEvalRun for each `required_eval_runs(...)` entry that does
not exist yet (names are deterministic, so a restarted operator never duplicates
one), reads back their states and passes them to `decide(..., evals=...)`. The
scores themselves reach gates through Prometheus (the `eval-score` preset); here
only completion matters: a stage with suites does not advance before every run
succeeded, and a failed or timed-out run is a gate Error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llm_rollout.api.durations import format_duration
from llm_rollout.api.evalrun import EvalPhase
from llm_rollout.api.spec import EvalSuite, LLMDeploymentSpec, Stage
from llm_rollout.api.status import EvalStatus, LLMDeploymentStatus
from llm_rollout.engine.plan import exposed_stage
from llm_rollout.engine.types import EvalRunState, EvalStates

# A run still unfinished this long after its timeout is declared timed out (the
# runner enforces the same deadline itself and normally reports it first).
TIMEOUT_GRACE_SECONDS = 5.0
MAX_OBJECT_NAME = 253


def eval_run_name(deployment: str, release: str, stage: str, suite: str, attempt: int) -> str:
    """`<deployment>-<release>-<stage>-<suite>-<attempt>`, shortened with a hash if too long."""
    name = f"{deployment}-{release}-{stage}-{suite}-{attempt}"
    if len(name) <= MAX_OBJECT_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_OBJECT_NAME - 11].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class EvalRunRequest:
    """An eval run the current stage needs."""

    name: str  # of the LLMEvalRun
    suite: EvalSuite
    stage: str
    release: str
    model: str
    attempt: int
    stable_release: str | None = None  # set when the suite compares with stable


def required_eval_runs(
    spec: LLMDeploymentSpec, status: LLMDeploymentStatus, name: str
) -> list[EvalRunRequest]:
    """The runs of the current stage's suites, once the candidate is exposed there.

    Empty when no rollout is progressing, the candidate is not exposed yet (its pods
    are not ready: nothing could answer), or the spec names a newer release.
    """
    stage = exposed_stage(spec, status)
    if stage is None:
        return []
    candidate, stable = status.candidate, status.stable
    assert candidate is not None and stable is not None
    return [
        EvalRunRequest(
            name=eval_run_name(name, candidate.id, stage.name, suite.name, status.attempt),
            suite=suite,
            stage=stage.name,
            release=candidate.id,
            model=candidate.model,
            attempt=status.attempt,
            stable_release=stable.id if suite.compare_stable else None,
        )
        for suite in spec.suites_at(stage.name)
    ]


@dataclass(frozen=True)
class EvalError:
    suite: str
    reason: str
    message: str


@dataclass(frozen=True)
class EvalAssessment:
    """The current stage's suites, judged from their runs' states."""

    stage: str
    statuses: list[EvalStatus] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # suites not finished yet
    errors: list[EvalError] = field(default_factory=list)  # failed / timed out: gate Error
    # When the last run finished, once all have succeeded (metrics need a scrape or two
    # before gates see them).
    settled_at: datetime | None = None

    @property
    def done(self) -> bool:
        return not self.pending and not self.errors

    def error_text(self) -> str:
        return "; ".join(f"eval suite {e.suite}: {e.message}" for e in self.errors)

    def pending_text(self) -> str:
        phases = {s.suite: s.phase.value.lower() for s in self.statuses}
        return ", ".join(f"{p} ({phases.get(p, 'pending')})" for p in self.pending)


def _assess_one(
    suite: EvalSuite, run: str, state: EvalRunState | None, now: datetime
) -> tuple[EvalStatus, EvalError | None]:
    if state is None or state.run != run:
        return EvalStatus(suite=suite.name, run=run, phase=EvalPhase.PENDING), None
    status = EvalStatus(
        suite=suite.name, run=run, phase=state.phase, reason=state.reason, message=state.message
    )
    if state.phase is EvalPhase.FAILED:
        why = state.message or state.reason or "failed"
        return status, EvalError(suite.name, state.reason or "EvalFailed", f"run {run}: {why}")
    if state.phase is EvalPhase.SUCCEEDED or state.created is None:
        return status, None
    deadline = state.created + timedelta(seconds=suite.timeout_seconds + TIMEOUT_GRACE_SECONDS)
    if now <= deadline:
        return status, None
    message = f"did not finish within its timeout of {format_duration(suite.timeout_seconds)}"
    timed_out = status.model_copy(update={"reason": "TimedOut", "message": message})
    return timed_out, EvalError(suite.name, "TimedOut", f"run {run} {message}")


def assess_evals(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    stage: Stage,
    states: EvalStates,
    *,
    name: str,
    now: datetime,
) -> EvalAssessment | None:
    """None when the stage has no suites; the candidate must be set."""
    suites = spec.suites_at(stage.name)
    if not suites or status.candidate is None:
        return None
    statuses: list[EvalStatus] = []
    pending: list[str] = []
    errors: list[EvalError] = []
    completions: list[datetime] = []
    for suite in suites:
        run = eval_run_name(name, status.candidate.id, stage.name, suite.name, status.attempt)
        state = states.get(suite.name)
        one, error = _assess_one(suite, run, state, now)
        statuses.append(one)
        if error is not None:
            errors.append(error)
        elif one.phase is not EvalPhase.SUCCEEDED:
            pending.append(suite.name)
        elif state is not None and state.completed is not None:
            completions.append(state.completed)
    settled = max(completions) if completions and not pending and not errors else None
    return EvalAssessment(
        stage=stage.name, statuses=statuses, pending=pending, errors=errors, settled_at=settled
    )
