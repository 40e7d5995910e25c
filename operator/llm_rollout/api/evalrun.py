"""`LLMEvalRun`: one run of an eval suite against one release, at one stage.

The operator creates it (owned by the LLMDeployment) when a stage with eval suites
starts; the eval runner (`llm-rollout eval --run NS/NAME`, a Job or a local
process) fills in its status; the operator exports the results of Succeeded runs
as `llm_eval_score` / `llm_eval_cases_total` for gates to read from Prometheus.
The spec carries a copy of the suite as it was when the run was created, so a
run is a self-contained record of what was evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.spec import EvalSuite

EVAL_RUN_KIND = "LLMEvalRun"
EVAL_RUN_PLURAL = "llmevalruns"
MAX_FAILURES_SHOWN = 20
MAX_INVALID_REASONS = 10


class EvalPhase(StrEnum):
    PENDING = "Pending"  # created, not started yet (also: no status at all)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


FINISHED_PHASES = frozenset({EvalPhase.SUCCEEDED, EvalPhase.FAILED})


class CaseResult(StrEnum):
    PASS = "pass"  # every check passed and every judge scored at least the threshold
    FAIL = "fail"  # a check failed or a valid judge score was below the threshold
    INVALID = "invalid"  # nothing failed, but a judge gave no valid score
    ERROR = "error"  # the release gave no answer


class LLMEvalRunSpec(CamelModel):
    """What to evaluate. Written once by the operator."""

    deployment: str = Field(max_length=253, description="The LLMDeployment this run is for.")
    release: str = Field(max_length=64, description="Release id evaluated (the candidate).")
    model: str = Field(
        default="", max_length=253, description="Model name sent in the requests (the release's)."
    )
    stage: str = Field(max_length=63, description="Stage whose start triggered the run.")
    attempt: int = Field(default=0, ge=0, description="Rollout attempt (see status.attempt).")
    port: int = Field(default=8080, ge=1, le=65535, description="Port of the release Service.")
    stable_release: str | None = Field(
        default=None,
        max_length=64,
        description="Stable release id, also evaluated when the suite compares with stable.",
    )
    suite: EvalSuite = Field(description="The suite, as defined when the run was created.")


class CaseCounts(CamelModel):
    """Cases by result."""

    total: int = Field(default=0, description="Cases evaluated.")
    passed: int = Field(default=0, alias="pass", description="Every check and judge passed.")
    fail: int = Field(default=0, description="A check failed or a judge scored too low.")
    invalid: int = Field(default=0, description="Nothing failed but a judge gave no valid score.")
    error: int = Field(default=0, description="The release gave no answer.")

    def by_result(self) -> dict[CaseResult, int]:
        return {
            CaseResult.PASS: self.passed,
            CaseResult.FAIL: self.fail,
            CaseResult.INVALID: self.invalid,
            CaseResult.ERROR: self.error,
        }


class CriterionKind(StrEnum):
    CHECK = "check"
    JUDGE = "judge"


class CriterionResult(CamelModel):
    """The aggregate of one check or judge over the answered cases."""

    name: str = Field(description="Check or judge name.")
    kind: CriterionKind = Field(description="check or judge.")
    score: float | None = Field(
        default=None,
        description="Normalised mean, 0..1 (checks: pass rate; judges: (mean - min) / "
        "(max - min)); the value of llm_eval_score. None: no valid score.",
    )
    mean: float | None = Field(
        default=None, description="Mean on the judge's own scale (checks: the pass rate)."
    )
    pass_rate: float | None = Field(
        default=None,
        description="Share of answered cases that passed (invalid judge scores count as "
        "not passed).",
    )
    count: int = Field(default=0, description="Valid scores (checks: answered cases).")
    invalid: int = Field(default=0, description="Invalid judge scores.")
    invalid_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="Invalid scores by reason: unreachable, timeout, http_<code>, "
        "bad_response, malformed, out_of_scale.",
    )
    last_error: str = Field(default="", description="An example of what made a score invalid.")


class EvalResult(CamelModel):
    """The results of one release."""

    release: str = Field(description="Release id.")
    cases: CaseCounts = Field(default_factory=CaseCounts, description="Cases by result.")
    criteria: list[CriterionResult] = Field(
        default_factory=list, description="Per check and judge."
    )
    composite: float | None = Field(
        default=None,
        description="Weighted mean of the criteria's scores (0..1); None when a weighted "
        "criterion has no valid score.",
    )
    mean_answer_seconds: float | None = Field(
        default=None, description="Mean time the release took to answer."
    )

    def criterion(self, name: str) -> CriterionResult | None:
        return next((c for c in self.criteria if c.name == name), None)


class CaseFailure(CamelModel):
    """A case that did not pass, for a human to look at."""

    case: str = Field(description="Case id.")
    release: str = Field(description="Release id.")
    result: CaseResult = Field(description="fail, invalid or error.")
    criterion: str = Field(default="", description="Check or judge concerned (empty: the answer).")
    detail: str = Field(default="", description="What went wrong.")


class LLMEvalRunStatus(CamelModel):
    """Progress and results, written by the eval runner (and by the operator when a run
    is lost)."""

    phase: EvalPhase | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed."
    )
    reason: str = Field(default="", description="CamelCase reason of the phase.")
    message: str = Field(default="", description="Human-readable details, e.g. why it failed.")
    start_time: datetime | None = Field(default=None, description="When the runner started.")
    completion_time: datetime | None = Field(default=None, description="When it finished.")
    progress: str = Field(default="", description="Cases done, e.g. '12/40'.")
    executor: str = Field(default="", description="What runs it: a Job, or a local process.")
    composite: float | None = Field(
        default=None, description="The candidate's composite score (copied, for display)."
    )
    candidate: EvalResult | None = Field(default=None, description="The release's results.")
    stable: EvalResult | None = Field(
        default=None, description="The stable release's results (compareStable)."
    )
    failures: list[CaseFailure] = Field(
        default_factory=list,
        max_length=MAX_FAILURES_SHOWN,
        description=f"Up to {MAX_FAILURES_SHOWN} cases that did not pass.",
    )

    @classmethod
    def from_object(cls, raw: Mapping[str, Any] | None) -> LLMEvalRunStatus:
        """Status as read from the object; keys of other writers are ignored."""
        return cls.validate_known(raw)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES


# The columns of `kubectl get llmevalruns` (gen.crd writes them into the CRD).
EVAL_RUN_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Deployment",
        "type": "string",
        "jsonPath": ".spec.deployment",
        "description": "The LLMDeployment.",
    },
    {"name": "Release", "type": "string", "jsonPath": ".spec.release", "description": "Release."},
    {"name": "Suite", "type": "string", "jsonPath": ".spec.suite.name", "description": "Suite."},
    {"name": "Stage", "type": "string", "jsonPath": ".spec.stage", "description": "Stage."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase."},
    {
        "name": "Score",
        "type": "number",
        "jsonPath": ".status.composite",
        "description": "Composite score of the release (0..1).",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Cases",
        "type": "integer",
        "jsonPath": ".status.candidate.cases.total",
        "priority": 1,
        "description": "Cases evaluated.",
    },
    {
        "name": "Passed",
        "type": "integer",
        "jsonPath": ".status.candidate.cases.pass",
        "priority": 1,
        "description": "Cases that passed.",
    },
    {
        "name": "Message",
        "type": "string",
        "jsonPath": ".status.message",
        "priority": 1,
        "description": "Why, for a failed run.",
    },
]
