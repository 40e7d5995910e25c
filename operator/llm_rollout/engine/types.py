"""Values passed into and out of the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from llm_rollout.api.evalrun import FINISHED_PHASES, EvalPhase
from llm_rollout.api.status import (
    EvalStatus,
    GateResult,
    LLMDeploymentStatus,
    SampleRatioCheck,
)
from llm_rollout.metrics.batch import CountSince


class Role(StrEnum):
    CANDIDATE = "candidate"
    STABLE = "stable"


class Part(StrEnum):
    VALUE = "value"  # value metrics
    SAMPLES = "samples"  # value metrics with a sample count
    SUCCESS = "success"  # ratio metrics
    TOTAL = "total"
    BUCKET = "bucket"  # scores metrics: the count of scores <= the query's level


@dataclass(frozen=True)
class MetricQuery:
    """One rendered PromQL query the current stage's gates need."""

    key: str  # unique within a plan; observations are keyed by it
    promql: str
    gate: str
    metric: str
    role: Role
    part: Part
    component: int | None = None  # index of the Composite component
    level: float | None = None  # scores metrics: the bucket's score
    # A preset count query's batchable form: the operator may answer it, with other
    # rollouts' queries, from one grouped query per counter (metrics/batch.py).
    count: CountSince | None = None


class ObservationErrorKind(StrEnum):
    """Why a query gave no value: from the metrics provider to status and the operator's
    `llm_rollout_prometheus_query_errors_total{kind}`, one enum end to end."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"  # an address the operator does not allow: never queried
    BAD_QUERY = "bad_query"
    EMPTY = "empty"  # no series: no data yet (counts read as 0)
    NAN = "nan"  # NaN / Inf: typically 0/0, no data
    MULTIPLE_SERIES = "multiple_series"
    MISSING = "missing"  # the caller passed no observation for a planned key


# No data is not broken metrics: it makes a gate Inconclusive, not Error.
NO_DATA_KINDS = frozenset({ObservationErrorKind.EMPTY, ObservationErrorKind.NAN})


@dataclass(frozen=True)
class ObservationError:
    kind: ObservationErrorKind
    message: str = ""

    @property
    def no_data(self) -> bool:
        return self.kind in NO_DATA_KINDS


Observation = float | ObservationError
Observations = Mapping[str, Observation]


@dataclass(frozen=True)
class EvalRunState:
    """What the caller knows about the eval run of one suite (keyed by suite name).

    `run` is the LLMEvalRun's name: a state for another run (an earlier stage or
    attempt) is ignored. A suite with no state has no run yet (Pending). A Failed
    state without a run object is how the caller reports that it cannot create
    the run (e.g. reason SecretMissing).
    """

    run: str
    phase: EvalPhase = EvalPhase.PENDING
    reason: str = ""
    message: str = ""
    created: datetime | None = None  # the run's creationTimestamp: its timeout counts from it
    completed: datetime | None = None
    composite: float | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES


EvalStates = Mapping[str, EvalRunState]


class Outcome(StrEnum):
    START = "Start"  # a new release's rollout began
    ADVANCE = "Advance"  # next step or stage (or candidate exposed at the first one)
    HOLD = "Hold"  # analysed, not advancing yet
    ROLLBACK = "Rollback"
    PROMOTE = "Promote"  # the candidate became stable
    PAUSE = "Pause"
    RESUME = "Resume"
    SUPERSEDE = "Supersede"  # a newer release replaced the candidate mid-rollout
    RETRY = "Retry"
    INVALID = "Invalid"
    FAIL = "Fail"
    REJECT = "Reject"  # a manual action that does not apply
    NOOP = "NoOp"


@dataclass(frozen=True)
class AnalysisResult:
    """What one analysis found, as it stood when the gates were read: a transition it
    causes (advance, promote) clears the gates from status, not from here."""

    release: str  # the candidate analysed
    stage: str
    step_index: int
    step_percent: int
    gates: tuple[GateResult, ...]
    sample_ratio: SampleRatioCheck | None
    evals: tuple[EvalStatus, ...]
    evidence_start: datetime | None  # the evidence read since (the step's start)


@dataclass(frozen=True)
class Decision:
    """The engine's answer: the new status and what happened, for events and logs."""

    status: LLMDeploymentStatus
    outcome: Outcome
    reason: str
    message: str
    # Seconds until the engine next has something to do (None: only a change will).
    requeue_after: float | None = None
    # Whether this decision was recorded in status.history (a transition, or a
    # Hold whose reason changed): the ones worth an Event.
    notable: bool = False
    # The analysis this call ran, if it ran one.
    analysis: AnalysisResult | None = None

    @property
    def warning(self) -> bool:
        """Whether an Event for it should be of type Warning."""
        return self.outcome in (
            Outcome.ROLLBACK,
            Outcome.INVALID,
            Outcome.FAIL,
            Outcome.REJECT,
        ) or (
            self.outcome is Outcome.PAUSE
            and self.reason in ("MetricsUnavailable", "EvalFailed", "SampleRatioMismatch")
        )
