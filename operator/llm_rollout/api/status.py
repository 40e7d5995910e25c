"""`LLMDeployment.status`: everything the engine knows, so a restarted operator resumes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.evalrun import EvalPhase
from llm_rollout.api.routing_table import ReleaseInfo, RoutingTable
from llm_rollout.api.spec import GateKind, RoutingProvider

HISTORY_LIMIT = 30


class Phase(StrEnum):
    PROGRESSING = "Progressing"  # a candidate is being rolled out
    PAUSED = "Paused"  # a candidate is held (spec.paused, or metrics unavailable)
    PROMOTED = "Promoted"  # stable serves everyone, no candidate
    ROLLED_BACK = "RolledBack"  # the candidate was withdrawn; stable serves everyone
    FAILED = "Failed"  # the operator could not act on the release; stable serves everyone
    INVALID = "Invalid"  # the spec cannot be acted on; routing left as it was


ACTIVE_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class PauseReason(StrEnum):
    SPEC = "Spec"  # spec.paused
    METRICS_UNAVAILABLE = "MetricsUnavailable"  # errorLimit reached, onMetricsUnavailable: Pause


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    PAUSED = "Paused"
    METRICS_AVAILABLE = "MetricsAvailable"
    EVALS_SUCCEEDED = "EvalsSucceeded"  # set only when spec.evals is not empty
    KNOWLEDGE_FRESH = "KnowledgeFresh"  # set only with spec.freshness.knowledgeBaseMaxAge
    ANALYSIS_ON_SCHEDULE = "AnalysisOnSchedule"  # while Progressing, from its analyses


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class GateResult(CamelModel):
    """The latest evaluation of one gate of the current stage."""

    name: str = Field(description="Gate name.")
    kind: GateKind = Field(description="Gate kind.")
    verdict: Verdict = Field(description="Pass, Fail, Inconclusive or Error.")
    value: float | None = Field(
        default=None,
        description="Candidate value or proportion (Compare on ratios: candidate minus stable).",
    )
    stable_value: float | None = Field(default=None, description="Compare: stable's value.")
    interval: list[float] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="Confidence sequence [low, high] of the value (count-based gates): each "
        "end holds at the configured confidence at every analysis of the step.",
    )
    samples: int | None = Field(default=None, description="Candidate samples behind the value.")
    stable_samples: int | None = Field(default=None, description="Compare: stable's samples.")
    threshold: str = Field(default="", description="What Pass requires, in words.")
    message: str = Field(default="", description="Why the verdict.")
    consecutive_failures: int = Field(
        default=0,
        description="Analyses this gate has failed since it last passed in this step "
        "(Inconclusive and Error analyses do not reset it).",
    )


class SampleRatioCheck(CamelModel):
    """The candidate's share of the step's assignment units against the routing's promise.

    A mismatch (a router bug, a leaking cohort header, buckets gone wrong) would
    corrupt every comparison, so it holds the rollout like broken metrics.
    """

    verdict: Verdict = Field(description="Pass (no mismatch found), Inconclusive or Error.")
    expected: float = Field(description="Candidate share the routing promises (0..1).")
    observed: float | None = Field(default=None, description="Candidate share observed.")
    candidate: int = Field(default=0, description="Units placed on the candidate.")
    stable: int = Field(default=0, description="Units placed on stable.")
    message: str = Field(default="", description="Why the verdict.")


class EvalStatus(CamelModel):
    """One eval suite of the current stage, as the engine last saw its run."""

    suite: str = Field(description="Suite name.")
    run: str = Field(description="Name of its LLMEvalRun.")
    phase: EvalPhase = Field(description="Pending, Running, Succeeded or Failed.")
    reason: str = Field(default="", description="Why, when it failed or timed out.")
    message: str = Field(default="", description="Details.")


class Condition(CamelModel):
    """A Kubernetes-style condition."""

    type: ConditionType = Field(description="Condition type.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int = Field(default=0, description="Generation the condition reflects.")


class HistoryEntry(CamelModel):
    """One notable decision of the engine."""

    time: datetime = Field(description="When it was decided.")
    decision: str = Field(description="Outcome: Start, Advance, Rollback, Promote, ...")
    release: str = Field(default="", description="Candidate release id it concerned.")
    stage: str = Field(default="", description="Stage at the time.")
    step: int = Field(default=0, description="Step index at the time.")
    reason: str = Field(default="", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable details.")


class PauseState(CamelModel):
    """Why and since when the rollout is paused."""

    since: datetime = Field(description="When the pause began.")
    reason: PauseReason = Field(description="Spec (spec.paused) or MetricsUnavailable.")


class LLMDeploymentStatus(CamelModel):
    """Observed state of an LLMDeployment, owned by the operator."""

    phase: Phase | None = Field(default=None, description="Where the rollout is.")
    previous_phase: Phase | None = Field(
        default=None, description="Phase before the spec became Invalid, restored once fixed."
    )
    message: str = Field(default="", description="Latest decision, in words.")
    release: str = Field(default="", description="Candidate release id, else stable's.")
    stable: ReleaseInfo | None = Field(default=None, description="Release serving by default.")
    candidate: ReleaseInfo | None = Field(
        default=None, description="Release being rolled out (kept after a rollback, for reference)."
    )
    stage_index: int = Field(default=0, description="Index of the current stage.")
    stage: str = Field(default="", description="Name of the current stage.")
    step_index: int = Field(default=0, description="Index of the current step in the stage.")
    step_percent: int = Field(
        default=0, description="Percent of the current stage's own cohorts on the candidate."
    )
    step: str = Field(default="", description="Current step for display, e.g. '2/3 (25%)'.")
    exposed: bool = Field(
        default=False,
        description="Whether the candidate receives traffic at the current step (false "
        "while waiting for its pods to become ready).",
    )
    stage_start_time: datetime | None = Field(
        default=None, description="When the current stage began (shifted by paused time)."
    )
    step_start_time: datetime | None = Field(
        default=None, description="When the current step began (shifted by paused time)."
    )
    evidence_start_time: datetime | None = Field(
        default=None,
        description="When the current step's evidence began: count-based gates judge the "
        "counts since then. Pauses do not move it (traffic still reaches the candidate).",
    )
    pause: PauseState | None = Field(default=None, description="Set while paused.")
    gates: list[GateResult] = Field(
        default_factory=list, description="Latest results of the current stage's gates."
    )
    sample_ratio: SampleRatioCheck | None = Field(
        default=None,
        description="The step's sample-ratio check at the last analysis (partial steps of "
        "router-served deployments with analysis.sampleRatioCheck).",
    )
    evals: list[EvalStatus] = Field(
        default_factory=list, description="The current stage's eval suites and their runs."
    )
    attempt: int = Field(
        default=0,
        description="Rollout attempts so far: each start or retry of a rollout is a new "
        "attempt with its own eval runs.",
    )
    consecutive_errors: int = Field(
        default=0, description="Consecutive analyses with unavailable metrics or failed evals."
    )
    last_analysis_time: datetime | None = Field(
        default=None, description="When gates were last evaluated."
    )
    routing: RoutingTable | None = Field(
        default=None, description="Which release each cohort reaches."
    )
    routing_provider: RoutingProvider | None = Field(
        default=None,
        description="The routing provider that publishes `routing` (spec.routing.provider "
        "when it was last applied): on a switch, the operator removes the others' objects.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded, Paused, MetricsAvailable, EvalsSucceeded "
        "(with spec.evals).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    observed_generation: int = Field(default=0, description="Generation last acted on.")
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"Notable decisions, oldest first, at most {HISTORY_LIMIT}: over the "
        "bound, Holds go first, then what came before the current rollout, and the "
        "rollout's start last.",
    )
    last_handled_action: str = Field(
        default="",
        description="'<action>/<action-id>' of the last manual action applied (each is "
        "applied once).",
    )

    def condition(self, type_: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @classmethod
    def from_object(cls, raw: Mapping[str, Any] | None) -> LLMDeploymentStatus:
        """Status as read from the object; keys of other writers (e.g. kopf's) are ignored."""
        return cls.validate_known(raw)

    def to_patch(self) -> dict[str, Any]:
        """The status as a JSON merge patch body: None values stay, so they clear fields."""
        return self.model_dump(mode="json", by_alias=True)
