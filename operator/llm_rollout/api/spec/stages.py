"""spec.cohorts and spec.stages: who is exposed, in which steps, judged by which gates."""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.cohorts import Cohort, CohortMatch
from llm_rollout.api.durations import parse_duration
from llm_rollout.api.spec.common import (
    MAX_COHORTS,
    MAX_COMPONENTS,
    MAX_GATES,
    MAX_STEPS,
    Duration,
    Name,
    Percent,
    _cel,
    _require_unique,
    _unique_names_cel,
    _validations,
)
from llm_rollout.metrics.presets import PRESET_NAMES


def default_cohorts() -> list[Cohort]:
    return [
        Cohort(name="experts", match=CohortMatch(headers={"x-user-group": ["expert"]})),
        Cohort(name="beta", match=CohortMatch(headers={"x-user-group": ["beta"]})),
        Cohort(name="everyone"),
    ]


class GateKind(StrEnum):
    THRESHOLD = "Threshold"
    RATIO = "Ratio"
    COMPARE = "Compare"
    COMPOSITE = "Composite"


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higherIsBetter"
    LOWER_IS_BETTER = "lowerIsBetter"


class GateComponent(CamelModel):
    """One weighted metric of a Composite gate."""

    metric: Name = Field(description="Metric name: one of spec.metrics or a built-in preset.")
    weight: float = Field(default=1.0, gt=0, le=1000, description="Relative weight.")
    suite: str | None = Field(
        default=None, max_length=128, description="Eval suite, for {{ suite }} (eval-score)."
    )
    criterion: str | None = Field(
        default=None, max_length=128, description="Criterion, for {{ criterion }}."
    )


_GATE_RULES: list[JsonDict] = [
    _cel(
        "self.kind == 'Composite' || has(self.metric)",
        "Threshold, Ratio and Compare gates need a metric",
    ),
    _cel(
        "self.kind != 'Composite' || (has(self.components) && size(self.components) > 0)",
        "Composite gates need components",
    ),
    _cel(
        "self.kind == 'Compare' || has(self.min) || has(self.max)",
        "Threshold, Ratio and Composite gates need min and/or max",
    ),
    _cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must be <= max"),
]


class Gate(CamelModel):
    """A check that must Pass before the rollout advances.

    Ratio, and Threshold on a ratio or scores metric: the step's proportion or mean
    score judged on its anytime-valid confidence sequence (Pass when the whole interval
    clears the bounds, Fail when it is wholly on the wrong side). Threshold on a value
    metric: its value over the recent window within [min, max]. Compare: candidate
    against stable, non-inferiority within `margin` (count metrics on a confidence
    sequence of the difference, value metrics on values). Composite: weighted mean of
    component metrics' values within [min, max].
    """

    model_config = ConfigDict(json_schema_extra=_validations(*_GATE_RULES))

    name: Name = Field(description="Gate name, unique within its stage.")
    kind: GateKind = Field(description="How the gate judges its metric(s).")
    metric: Name | None = Field(
        default=None,
        description="Metric name: one of spec.metrics or a built-in preset "
        f"({', '.join(PRESET_NAMES)}).",
    )
    min_value: float | None = Field(
        default=None, alias="min", description="Lower bound on the value or proportion."
    )
    max_value: float | None = Field(
        default=None, alias="max", description="Upper bound on the value or proportion."
    )
    min_samples: int = Field(
        default=0,
        ge=0,
        le=1_000_000_000,
        description="Fewer samples (ratio total, or the metric's sample count) than this: "
        "Inconclusive. For Compare, required of both releases.",
    )
    margin: float = Field(
        default=0.0,
        ge=0,
        description="Compare: how much worse than stable the candidate may be, in the "
        "metric's units (absolute).",
    )
    direction: Direction | None = Field(
        default=None,
        description="Compare: which way is better. Default: lowerIsBetter for error-rate, "
        "latency-p95 and ttft-p95, else higherIsBetter.",
    )
    components: list[GateComponent] = Field(
        default_factory=list, max_length=MAX_COMPONENTS, description="Composite: weighted metrics."
    )
    suite: str | None = Field(
        default=None, max_length=128, description="Eval suite, for {{ suite }} (eval-score)."
    )
    criterion: str | None = Field(
        default=None,
        max_length=128,
        description="Criterion, for {{ criterion }} (eval-score; expert-rating, default overall).",
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> Gate:
        if self.kind != GateKind.COMPOSITE and self.metric is None:
            raise ValueError(f"gate {self.name}: {self.kind} gates need a metric")
        if self.kind == GateKind.COMPOSITE and not self.components:
            raise ValueError(f"gate {self.name}: Composite gates need components")
        if self.kind != GateKind.COMPARE and self.min_value is None and self.max_value is None:
            raise ValueError(f"gate {self.name}: {self.kind} gates need min and/or max")
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise ValueError(f"gate {self.name}: min must be <= max")
        return self

    def metric_names(self) -> list[str]:
        names = [self.metric] if self.metric else []
        return names + [c.metric for c in self.components]


_STAGE_RULES: list[JsonDict] = [
    _cel(
        "!has(self.maxDuration) || duration(self.minDuration) <= duration(self.maxDuration)",
        "minDuration must be <= maxDuration",
    ),
]


class Stage(CamelModel):
    """A step of the rollout exposing the candidate to more cohorts.

    Exposure is cumulative: a stage exposes its cohorts plus those of earlier stages
    (at 100%). Its own cohorts go through `steps` (sticky percentages); each step
    soaks at least `minDuration` and must pass all gates within `maxDuration`.
    """

    model_config = ConfigDict(json_schema_extra=_validations(*_STAGE_RULES))

    name: Name = Field(description="Stage name, unique.")
    cohorts: list[Name] = Field(
        min_length=1,
        max_length=MAX_COHORTS,
        description="Cohorts this stage exposes (in addition to earlier stages' cohorts).",
    )
    steps: list[Percent] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Strictly ascending percentages (1-100) of the stage's own cohorts "
        "reaching the candidate, one step after another; empty means 100 at once.",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            **_validations(_cel("self.isSorted()", "steps must be strictly ascending")),
        },
    )
    min_duration: Duration = Field(
        default="5m",
        description="Minimum time at each step before advancing (paused time does not "
        "count). A stage without gates advances after it.",
    )
    max_duration: Duration | None = Field(
        default=None,
        description="Maximum time at each step to get every gate to Pass; past it the "
        "candidate is rolled back. Unset: no limit.",
    )
    gates: list[Gate] = Field(
        default_factory=list,
        max_length=MAX_GATES,
        description="Gates evaluated at every analysis while this stage is current.",
        json_schema_extra=_validations(_unique_names_cel("gate")),
    )

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError("steps must be strictly ascending")
        return steps

    @model_validator(mode="after")
    def _check(self) -> Stage:
        _require_unique([g.name for g in self.gates], f"stage {self.name}: gate")
        if self.max_duration is not None and parse_duration(self.min_duration) > parse_duration(
            self.max_duration
        ):
            raise ValueError(f"stage {self.name}: minDuration must be <= maxDuration")
        return self

    @property
    def percents(self) -> list[int]:
        """The steps, with the implicit single 100% step of a stage without steps."""
        return list(self.steps) or [100]

    @property
    def min_seconds(self) -> float:
        return parse_duration(self.min_duration)

    @property
    def max_seconds(self) -> float | None:
        return None if self.max_duration is None else parse_duration(self.max_duration)


def default_stages() -> list[Stage]:
    # The last stage stops at 50%: completing it promotes, and Compare gates keep
    # stable traffic to compare against (at 100% stable has none).
    return [
        Stage(name="experts", cohorts=["experts"]),
        Stage(name="beta", cohorts=["beta"]),
        Stage(name="all", cohorts=["everyone"], steps=[10, 25, 50]),
    ]
