"""`LLMDeployment.spec`: the single source of truth for the CRD schema.

Every rule the API server checks with CEL (`x-kubernetes-validations`) is mirrored
by a pydantic validator, so a spec that parses here is one admission accepts.
Checks admission cannot do (PromQL templates) live in `engine.validate`.
Limits on list and string sizes keep the CEL rules within the API server's cost budget.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict, JsonValue

from llm_rollout.api.cohorts import DEFAULT_COHORT, DEFAULT_USER_ID_HEADER, Cohort, CohortMatch
from llm_rollout.api.durations import DURATION_MAX_LENGTH, DURATION_PATTERN, parse_duration
from llm_rollout.api.routing_table import DEFAULT_SERVICE_PORT, ReleaseInfo
from llm_rollout.camel import CamelModel
from llm_rollout.heuristics.checks import CheckSpec, parse_checks
from llm_rollout.metrics.presets import PRESET_NAMES, PRESETS, MetricKind

MAX_COHORTS = 16
MAX_STAGES = 10
MAX_STEPS = 20
MAX_GATES = 10
MAX_COMPONENTS = 8
MAX_METRICS = 32
MAX_QUERY_LENGTH = 4096
MAX_LIST = 32  # hostnames, gateways, ...
MAX_CHECKS = 32
MAX_EVALS = 8
MAX_JUDGES = 8
MAX_RUBRIC_LENGTH = 8192
RESERVED_CRITERIA = ("composite",)

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]
Duration = Annotated[
    str, Field(max_length=DURATION_MAX_LENGTH, pattern=DURATION_PATTERN, examples=["30s", "1h30m"])
]
Percent = Annotated[int, Field(ge=1, le=100)]
ShortText = Annotated[str, Field(max_length=253)]

_PRESETS_CEL = "[" + ", ".join(f"'{p}'" for p in PRESET_NAMES) + "]"


def _cel(rule: str, message: str, message_expression: str | None = None) -> JsonDict:
    """A CEL rule; `message_expression` names the item at fault (the API server falls
    back to `message` should the expression itself fail)."""
    if message_expression is None:
        return {"rule": rule, "message": message}
    return {"rule": rule, "message": message, "messageExpression": message_expression}


def _validations(*rules: JsonDict) -> JsonDict:
    """json_schema_extra carrying CEL rules (crdgen keeps them in the CRD)."""
    items: list[JsonValue] = [*rules]
    return {"x-kubernetes-validations": items}


def _unique_names_cel(what: str) -> JsonDict:
    return _cel("self.all(x, self.exists_one(y, y.name == x.name))", f"{what} names must be unique")


def _listed(names: list[str]) -> str:
    """A list of names as CEL's format() prints it, so both checks say the same."""
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def _duplicates(names: list[str]) -> list[str]:
    return sorted(n for n, count in Counter(names).items() if count > 1)


def _require_unique(names: list[str], what: str) -> None:
    if dup := _duplicates(names):
        raise ValueError(f"{what} names must be unique: {', '.join(dup)}")


# --- release -------------------------------------------------------------------------


class ModelRef(CamelModel):
    """The model the release serves."""

    name: str = Field(min_length=1, max_length=253, description="Model name, e.g. llama-3.1-8b.")
    revision: str = Field(
        default="", max_length=128, description="Model revision (tag, digest or version)."
    )


class ConfigMapKeyRef(CamelModel):
    """A key of a ConfigMap in the LLMDeployment's namespace."""

    name: str = Field(min_length=1, max_length=253, description="ConfigMap name.")
    key: str = Field(min_length=1, max_length=253, description="Key within the ConfigMap.")


class PromptRef(CamelModel):
    """The prompt template the release uses."""

    version: str = Field(default="", max_length=128, description="Prompt template version.")
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap key holding the prompt template, if any."
    )


class KnowledgeBase(CamelModel):
    """The knowledge base (retrieval corpus) the release reads."""

    snapshot: str = Field(
        default="", max_length=253, description="Knowledge-base snapshot id or version."
    )


class ReleaseSpec(CamelModel):
    """What users get. Any change here except `replicas` makes a new release."""

    model: ModelRef = Field(description="Model served by the release.")
    prompt: PromptRef = Field(default_factory=PromptRef, description="Prompt template.")
    knowledge_base: KnowledgeBase = Field(
        default_factory=KnowledgeBase, description="Knowledge-base snapshot."
    )
    template: dict[str, Any] = Field(
        default_factory=dict,
        description="Pod template (a core/v1 PodTemplateSpec) of the release's pods; the "
        "container serving the application listens on `port`.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    replicas: int = Field(default=1, ge=1, le=1000, description="Pods per release.")
    port: int = Field(
        default=DEFAULT_SERVICE_PORT, ge=1, le=65535, description="Port the application serves on."
    )


# --- cohorts and stages --------------------------------------------------------------


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


# --- metrics and analysis ------------------------------------------------------------

Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_LENGTH)]


class RatioQueries(CamelModel):
    """A proportion as two PromQL counts over the window."""

    success: Query = Field(description="PromQL: count of successes (the numerator).")
    total: Query = Field(description="PromQL: count of all outcomes (the denominator).")


_METRIC_RULES: list[JsonDict] = [
    _cel("has(self.query) != has(self.ratio)", "set exactly one of query or ratio"),
    _cel("!has(self.samples) || has(self.query)", "samples only applies to query metrics"),
]


class MetricSpec(CamelModel):
    """A named metric gates can use: a PromQL value or a ratio of two PromQL counts.

    Templates may use {{ namespace }}, {{ name }}, {{ release }}, {{ stable_release }},
    {{ cohorts }}, {{ suite }}, {{ criterion }} (inside double-quoted label values)
    and {{ window }} (in range selectors). A metric named like a preset replaces it.
    """

    model_config = ConfigDict(json_schema_extra=_validations(*_METRIC_RULES))

    name: Name = Field(description="Metric name, referenced by gates.")
    query: Query | None = Field(default=None, description="PromQL returning one value.")
    ratio: RatioQueries | None = Field(default=None, description="PromQL counts of a proportion.")
    samples: Query | None = Field(
        default=None, description="PromQL: number of observations behind `query` (for minSamples)."
    )
    lower_is_better: bool = Field(
        default=False, description="Default direction of Compare gates on this metric."
    )

    @model_validator(mode="after")
    def _one_form(self) -> MetricSpec:
        if (self.query is None) == (self.ratio is None):
            raise ValueError(f"metric {self.name}: set exactly one of query or ratio")
        if self.samples is not None and self.query is None:
            raise ValueError(f"metric {self.name}: samples only applies to query metrics")
        return self

    @property
    def kind(self) -> MetricKind:
        return MetricKind.VALUE if self.query is not None else MetricKind.RATIO


class OnMetricsUnavailable(StrEnum):
    PAUSE = "Pause"
    ROLLBACK = "Rollback"


_ANALYSIS_RULES: list[JsonDict] = [
    _cel("self.confidence > 0.0 && self.confidence < 1.0", "confidence must be in (0, 1)"),
    _cel("duration(self.interval) >= duration('1s')", "interval must be at least 1s"),
    _cel("duration(self.window) >= duration('1s')", "window must be at least 1s"),
]


class Analysis(CamelModel):
    """How and how often gates are evaluated."""

    model_config = ConfigDict(json_schema_extra=_validations(*_ANALYSIS_RULES))

    interval: Duration = Field(
        default="30s",
        description="Time between analyses; the first comes one interval after the step begins.",
    )
    window: Duration = Field(
        default="5m",
        description="Range of value queries ({{ window }}: latency, eval scores): their "
        "recent behaviour. Count queries (ratio and scores metrics) range over the whole "
        "step instead.",
    )
    confidence: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="Of each decision a count-based gate makes: a candidate on the wrong "
        "side of (or at) a bound passes it with probability at most 1 - confidence, and one "
        "on the right side fails it with at most 1 - confidence, however many analyses run "
        "(anytime-valid confidence sequences; docs/statistics.md).",
    )
    failure_limit: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Fail analyses of a gate (since it last passed in the step) before "
        "rollback. A count-based gate's Fail is already final at 1.",
    )
    error_limit: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive analyses with unavailable metrics before "
        "onMetricsUnavailable applies.",
    )
    on_metrics_unavailable: OnMetricsUnavailable = Field(
        default=OnMetricsUnavailable.PAUSE,
        description="What to do after errorLimit analyses without metrics.",
    )
    sample_ratio_check: bool = Field(
        default=True,
        description="At partial steps, test the candidate's share of the users the router "
        "placed against the step's percentage; a mismatch is an error, like broken metrics.",
    )

    @model_validator(mode="after")
    def _check(self) -> Analysis:
        for field in ("interval", "window"):
            if parse_duration(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be at least 1s")
        return self

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)


class SecretKeyRef(CamelModel):
    """A key of a Secret in the LLMDeployment's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class PrometheusSpec(CamelModel):
    """Where metrics are read from."""

    address: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Prometheus base URL; unset: the operator's default. The operator "
        "only queries addresses it is configured to allow.",
    )
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token for Prometheus."
    )


class RoutingProvider(StrEnum):
    BUILTIN = "builtin"
    GATEWAY_API = "gateway-api"
    ISTIO = "istio"


class GatewayApiRouting(CamelModel):
    """Options of the gateway-api provider (an HTTPRoute per LLMDeployment)."""

    parent_refs: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="HTTPRoute parentRefs (gateway.networking.k8s.io ParentReference).",
        json_schema_extra={
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    )
    hostnames: list[ShortText] = Field(
        default_factory=list, max_length=MAX_LIST, description="HTTPRoute hostnames."
    )


class IstioRouting(CamelModel):
    """Options of the istio provider (a VirtualService per LLMDeployment)."""

    hosts: list[ShortText] = Field(
        default_factory=list, max_length=MAX_LIST, description="VirtualService hosts."
    )
    gateways: list[ShortText] = Field(
        default_factory=list, max_length=MAX_LIST, description="VirtualService gateways."
    )


class RoutingSpec(CamelModel):
    """How the routing table reaches users."""

    provider: RoutingProvider = Field(
        default=RoutingProvider.BUILTIN,
        description="builtin: the llm-rollout router; gateway-api: an HTTPRoute; "
        "istio: a VirtualService.",
    )
    hosts: list[ShortText] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="builtin: Host header values the router serves this deployment for "
        "(empty: it is selected otherwise, see docs/router.md).",
    )
    gateway_api: GatewayApiRouting | None = Field(
        default=None, description="Options of the gateway-api provider."
    )
    istio: IstioRouting | None = Field(default=None, description="Options of the istio provider.")


# --- eval suites ---------------------------------------------------------------------


class EvalDataset(CamelModel):
    """Where a suite's cases come from: JSON Lines in a ConfigMap key.

    One case per line: `{"id": "c1", "messages": [{"role": "user", "content": "..."}],
    "reference": "optional reference answer", "tags": ["optional"]}`.
    """

    config_map_ref: ConfigMapKeyRef = Field(
        description="ConfigMap key (in the LLMDeployment's namespace) holding the cases."
    )


_SCALE_RULES: list[JsonDict] = [_cel("self.min < self.max", "scale min must be < max")]


class JudgeScale(CamelModel):
    """The judge's score scale (inclusive)."""

    model_config = ConfigDict(json_schema_extra=_validations(*_SCALE_RULES))

    min_value: int = Field(default=1, alias="min", ge=0, le=1000, description="Worst score.")
    max_value: int = Field(default=5, alias="max", ge=1, le=1000, description="Best score.")

    @model_validator(mode="after")
    def _ordered(self) -> JudgeScale:
        if self.min_value >= self.max_value:
            raise ValueError("scale min must be < max")
        return self

    def normalise(self, score: float) -> float:
        """A score on this scale as 0..1."""
        return (score - self.min_value) / (self.max_value - self.min_value)


class Judge(CamelModel):
    """An LLM asked to score each answer against a rubric (LLM-as-judge).

    Any OpenAI-compatible chat endpoint. The judge is told to answer with strict JSON
    `{"score": <number>, "reason": "..."}`; anything else (or a score outside the
    scale, or an endpoint error) is an invalid score, counted and never a pass.
    """

    name: Name = Field(description="Judge name: the criterion its scores are reported as.")
    endpoint: str = Field(
        max_length=2048,
        pattern=r"^https?://",
        description="Base URL of an OpenAI-compatible API, e.g. http://judge.evals:8000/v1 "
        "(the runner POSTs to <endpoint>/chat/completions).",
    )
    model: str = Field(min_length=1, max_length=253, description="Model name sent to the judge.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the API key (sent as a Bearer token)."
    )
    rubric: str = Field(
        min_length=1,
        max_length=MAX_RUBRIC_LENGTH,
        description="What a good answer is, and what each score means.",
    )
    scale: JudgeScale = Field(default_factory=JudgeScale, description="Score scale.")
    weight: float = Field(
        default=1.0, ge=0, le=1000, description="Weight in the suite's composite score (0: none)."
    )


_EVAL_RULES: list[JsonDict] = [
    _cel(
        "(has(self.checks) && size(self.checks) > 0) || "
        "(has(self.judges) && size(self.judges) > 0)",
        "an eval suite needs checks or judges",
    ),
    _cel(
        "!has(self.judges) || !has(self.checks) || "
        "self.judges.all(j, !self.checks.exists(c, c.name == j.name))",
        "judge and check names must differ (each is a criterion)",
    ),
    _cel(
        "(!has(self.judges) || self.judges.all(j, j.name != 'composite')) && "
        "(!has(self.checks) || self.checks.all(c, c.name != 'composite'))",
        "'composite' is reserved for the weighted score",
    ),
]


class EvalSuite(CamelModel):
    """An offline evaluation run against the candidate when a stage starts.

    Each case's input messages are sent to the release's Service; the answer goes
    through the heuristic `checks` and is scored by each `judge`. Results are an
    LLMEvalRun object and the `llm_eval_score` metric (0..1 per criterion and the
    weighted `composite`), which gates read with the `eval-score` preset. The stage
    does not advance before its suites finished; a failed or timed-out run is a
    gate Error.
    """

    model_config = ConfigDict(json_schema_extra=_validations(*_EVAL_RULES))

    name: Name = Field(description="Suite name (the `suite` label of llm_eval_score).")
    dataset: EvalDataset = Field(description="The cases.")
    sample: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="Cases per run: a fixed, deterministic subset of this size; 0: all.",
    )
    checks: list[CheckSpec] = Field(
        default_factory=list,
        max_length=MAX_CHECKS,
        description="Heuristic checks of each answer (glossary, brand names, tone...); "
        "each is a criterion scored by its pass rate.",
        json_schema_extra=_validations(_unique_names_cel("check")),
    )
    judges: list[Judge] = Field(
        default_factory=list,
        max_length=MAX_JUDGES,
        description="LLM judges scoring each answer.",
        json_schema_extra=_validations(_unique_names_cel("judge")),
    )
    stages: list[Name] = Field(
        min_length=1,
        max_length=MAX_STAGES,
        description="Stages at whose start the suite runs; they wait for it.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    compare_stable: bool = Field(
        default=False,
        description="Also run the cases against the stable release (for Compare gates).",
    )
    timeout: Duration = Field(
        default="15m",
        description="A run not finished this long after it was created fails (gate Error).",
    )
    request_timeout: Duration = Field(
        default="60s", description="Timeout of one request to the release or a judge."
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight at once (release and judges)."
    )
    pass_threshold: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="A judge score passes when (score - min) / (max - min) is at least this "
        "(0.75 on 1..5: 4 or better). A case passes when every check and judge does.",
    )
    check_weight: float = Field(
        default=1.0, ge=0, le=1000, description="Weight of each check in the composite score."
    )
    max_invalid_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The run fails when more than this share of cases got no answer, or of "
        "any judge's scores are invalid: its scores would not be trustworthy.",
    )

    @model_validator(mode="after")
    def _check(self) -> EvalSuite:
        if not self.checks and not self.judges:
            raise ValueError(f"eval suite {self.name}: an eval suite needs checks or judges")
        _require_unique([c.name for c in self.checks], f"eval suite {self.name}: check")
        _require_unique([j.name for j in self.judges], f"eval suite {self.name}: judge")
        _require_unique(list(self.stages), f"eval suite {self.name}: stage")
        if both := sorted({c.name for c in self.checks} & {j.name for j in self.judges}):
            raise ValueError(
                f"eval suite {self.name}: judge and check names must differ (each is a "
                f"criterion): {', '.join(both)}"
            )
        if reserved := [n for n in self.criteria() if n in RESERVED_CRITERIA]:
            raise ValueError(
                f"eval suite {self.name}: {', '.join(reserved)} is reserved for the weighted score"
            )
        return self

    def criteria(self) -> list[str]:
        """Criterion names: the checks', then the judges'."""
        return [c.name for c in self.checks] + [j.name for j in self.judges]

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)

    @property
    def request_timeout_seconds(self) -> float:
        return parse_duration(self.request_timeout)


# --- the spec ------------------------------------------------------------------------


def _defined_metric_cel(metric: str) -> str:
    return (
        f"({metric} in {_PRESETS_CEL} || "
        f"(has(self.metrics) && self.metrics.exists(m, m.name == {metric})))"
    )


# Messages that name the item at fault. They use format(), not `+` or join(): the API
# server's cost estimate of concatenating strings taken from lists is beyond its budget.
# They name the first item at fault.


def _stage_at_fault_cel(bad: str, what: str, rule: str) -> str:
    """'stage S: WHAT (rule)' for the first stage with a gate `g` where `bad` holds.

    The stage only: naming the gate as well (format, join, map or a branch per stage)
    takes the API server's cost estimate over its budget; kubectl prints the whole
    object's path, and the operator's own check names the gate and the metric.
    """
    stage = f"self.stages.filter(s, has(s.gates) && s.gates.exists(g, {bad}))[0]"
    return f"'stage %s: {what} ({rule})'.format([{stage}.name])"


_UNDEFINED_METRIC_BAD = (
    f"(has(g.metric) && !{_defined_metric_cel('g.metric')}) || (has(g.components) && "
    f"g.components.exists(c, !{_defined_metric_cel('c.metric')}))"
)
_UNDEFINED_SUITE_BAD = (
    "(has(g.suite) && has(g.metric) && g.metric == 'eval-score' && "
    "!self.evals.exists(e, e.name == g.suite)) || (has(g.components) && "
    "g.components.exists(c, has(c.suite) && c.metric == 'eval-score' && "
    "!self.evals.exists(e, e.name == c.suite)))"
)
_COHORT_UNDEFINED = "!self.cohorts.exists(d, d.name == c)"
_STAGE_WITH_UNDEFINED_COHORT = f"self.stages.filter(s, s.cohorts.exists(c, {_COHORT_UNDEFINED}))[0]"
_STAGE_UNDEFINED = "!self.stages.exists(s, s.name == n)"
_SUITE_WITH_UNDEFINED_STAGE = f"self.evals.filter(e, e.stages.exists(n, {_STAGE_UNDEFINED}))[0]"
_COHORT_RULE = "every cohort of a stage must be defined in spec.cohorts"
_METRIC_RULE = "every gate metric must be defined in spec.metrics or be a built-in preset"
_SUITE_STAGE_RULE = "every stage of an eval suite must be defined in spec.stages"
_GATE_SUITE_RULE = "every eval suite an eval-score gate names must be defined in spec.evals"


_SPEC_RULES: list[JsonDict] = [
    _cel(
        "self.cohorts.exists(c, c.name == self.defaultCohort)",
        "defaultCohort must name a cohort of spec.cohorts",
        "'defaultCohort %s must name a cohort of spec.cohorts %s'"
        ".format([self.defaultCohort, self.cohorts.map(c, c.name)])",
    ),
    _cel(
        "self.stages.all(s, s.cohorts.all(c, self.cohorts.exists(d, d.name == c)))",
        _COHORT_RULE,
        f"'stage %s: undefined cohorts %s ({_COHORT_RULE})'.format(["
        f"{_STAGE_WITH_UNDEFINED_COHORT}.name, "
        f"{_STAGE_WITH_UNDEFINED_COHORT}.cohorts.filter(c, {_COHORT_UNDEFINED})])",
    ),
    _cel(
        "self.stages.all(s, !has(s.gates) || s.gates.all(g, "
        f"(!has(g.metric) || g.metric in {_PRESETS_CEL} || "
        "(has(self.metrics) && self.metrics.exists(m, m.name == g.metric))) && "
        "(!has(g.components) || g.components.all(c, "
        f"c.metric in {_PRESETS_CEL} || "
        "(has(self.metrics) && self.metrics.exists(m, m.name == c.metric))))))",
        _METRIC_RULE,
        _stage_at_fault_cel(
            _UNDEFINED_METRIC_BAD, "a gate names a metric that is undefined", _METRIC_RULE
        ),
    ),
    _cel(
        "!has(self.evals) || self.evals.all(e, e.stages.all(n, "
        "self.stages.exists(s, s.name == n)))",
        _SUITE_STAGE_RULE,
        f"'eval suite %s: undefined stages %s ({_SUITE_STAGE_RULE})'.format(["
        f"{_SUITE_WITH_UNDEFINED_STAGE}.name, "
        f"{_SUITE_WITH_UNDEFINED_STAGE}.stages.filter(n, {_STAGE_UNDEFINED})])",
    ),
    _cel(
        "!has(self.evals) || size(self.evals) == 0 || self.stages.all(s, !has(s.gates) || "
        "s.gates.all(g, (!has(g.suite) || !has(g.metric) || g.metric != 'eval-score' || "
        "self.evals.exists(e, e.name == g.suite)) && (!has(g.components) || "
        "g.components.all(c, !has(c.suite) || c.metric != 'eval-score' || "
        "self.evals.exists(e, e.name == c.suite)))))",
        _GATE_SUITE_RULE,
        _stage_at_fault_cel(
            _UNDEFINED_SUITE_BAD, "an eval-score gate names an undefined suite", _GATE_SUITE_RULE
        ),
    ),
]


class LLMDeploymentSpec(CamelModel):
    """Desired state of an LLMDeployment: the release and how to roll it out."""

    model_config = ConfigDict(json_schema_extra=_validations(*_SPEC_RULES))

    release: ReleaseSpec = Field(description="The release users should get.")
    cohorts: list[Cohort] = Field(
        default_factory=default_cohorts,
        min_length=1,
        max_length=MAX_COHORTS,
        description="Named groups of users. Default: experts (x-user-group: expert), "
        "beta (x-user-group: beta), everyone.",
        json_schema_extra=_validations(_unique_names_cel("cohort")),
    )
    default_cohort: Name = Field(
        default=DEFAULT_COHORT, description="Cohort of requests that match no cohort."
    )
    user_id_header: str = Field(
        default=DEFAULT_USER_ID_HEADER,
        min_length=1,
        max_length=128,
        description="Request header carrying the user id (sticky bucketing).",
    )
    stages: list[Stage] = Field(
        default_factory=default_stages,
        min_length=1,
        max_length=MAX_STAGES,
        description="Ordered stages; completing the last promotes the candidate. "
        "Default: experts, beta, all (10%, 25%, 50%).",
        json_schema_extra=_validations(_unique_names_cel("stage")),
    )
    metrics: list[MetricSpec] = Field(
        default_factory=list,
        max_length=MAX_METRICS,
        description="Named metrics for gates, in addition to the built-in presets.",
        json_schema_extra=_validations(_unique_names_cel("metric")),
    )
    analysis: Analysis = Field(default_factory=Analysis, description="Analysis settings.")
    prometheus: PrometheusSpec = Field(
        default_factory=PrometheusSpec, description="Prometheus to query."
    )
    routing: RoutingSpec = Field(default_factory=RoutingSpec, description="Traffic routing.")
    checks: list[CheckSpec] = Field(
        default_factory=list,
        max_length=MAX_CHECKS,
        description="Online heuristic checks the router runs on every answer "
        "(llm_heuristic_checks_total, the heuristic-pass-rate preset).",
    )
    evals: list[EvalSuite] = Field(
        default_factory=list,
        max_length=MAX_EVALS,
        description="Offline eval suites run against the candidate when a stage starts "
        "(LLMEvalRun objects; the eval-score metric preset). See docs/evals.md.",
        json_schema_extra=_validations(_unique_names_cel("eval suite")),
    )
    paused: bool = Field(
        default=False, description="Hold the rollout where it is (no analysis, no advance)."
    )

    @field_validator("checks")
    @classmethod
    def _checks(cls, checks: list[CheckSpec]) -> list[CheckSpec]:
        parse_checks(checks)  # each check's own rules, and unique names
        return checks

    @model_validator(mode="after")
    def _references(self) -> LLMDeploymentSpec:
        cohorts = [c.name for c in self.cohorts]
        _require_unique(cohorts, "cohort")
        _require_unique([s.name for s in self.stages], "stage")
        _require_unique([m.name for m in self.metrics], "metric")
        if self.default_cohort not in cohorts:
            raise ValueError(
                f"defaultCohort {self.default_cohort} must name a cohort of spec.cohorts "
                f"{_listed(cohorts)}"
            )
        metrics = set(PRESET_NAMES) | {m.name for m in self.metrics}
        for stage in self.stages:
            if missing := [c for c in stage.cohorts if c not in cohorts]:
                raise ValueError(
                    f"stage {stage.name}: undefined cohorts {_listed(missing)} ({_COHORT_RULE})"
                )
            for gate in stage.gates:
                if missing := [m for m in gate.metric_names() if m not in metrics]:
                    raise ValueError(
                        f"stage {stage.name} gate {gate.name}: undefined metrics "
                        f"{', '.join(missing)} (not in spec.metrics nor a preset)"
                    )
        _require_unique([e.name for e in self.evals], "eval suite")
        stages = {s.name for s in self.stages}
        for suite in self.evals:
            if missing := [n for n in suite.stages if n not in stages]:
                raise ValueError(
                    f"eval suite {suite.name}: undefined stages {_listed(missing)} "
                    f"({_SUITE_STAGE_RULE})"
                )
        if self.evals:
            suites = {e.name for e in self.evals}
            for stage in self.stages:
                for gate in stage.gates:
                    named = [(gate.metric, gate.suite)] + [
                        (c.metric, c.suite) for c in gate.components
                    ]
                    if missing := [
                        str(suite)
                        for metric, suite in named
                        if metric == "eval-score" and suite is not None and suite not in suites
                    ]:
                        raise ValueError(
                            f"stage {stage.name} gate {gate.name}: undefined eval suite "
                            f"{', '.join(missing)} (not in spec.evals)"
                        )
        return self

    def suites_at(self, stage: str) -> list[EvalSuite]:
        """The eval suites that run at the start of `stage`."""
        return [e for e in self.evals if stage in e.stages]

    def metric(self, name: str) -> MetricSpec | None:
        """The user-defined metric `name` (which shadows a preset of that name)."""
        return next((m for m in self.metrics if m.name == name), None)

    def metric_kind(self, name: str) -> MetricKind | None:
        if (user := self.metric(name)) is not None:
            return user.kind
        preset = PRESETS.get(name)
        return preset.kind if preset else None


# --- release identity ----------------------------------------------------------------


def _release_of(spec: LLMDeploymentSpec | ReleaseSpec) -> ReleaseSpec:
    return spec.release if isinstance(spec, LLMDeploymentSpec) else spec


def release_id(spec: LLMDeploymentSpec | ReleaseSpec) -> str:
    """First 10 hex digits of sha256 of the canonical JSON of the release (bar replicas).

    Defaults are left out, so spelling out a default, or a new optional field in a
    later API version, does not change the id.
    """
    data = _release_of(spec).model_dump(
        mode="json", by_alias=True, exclude={"replicas"}, exclude_defaults=True, exclude_none=True
    )
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def release_info(spec: LLMDeploymentSpec | ReleaseSpec) -> ReleaseInfo:
    release = _release_of(spec)
    return ReleaseInfo(
        id=release_id(release),
        model=release.model.name,
        model_revision=release.model.revision,
        prompt_version=release.prompt.version,
        knowledge_base=release.knowledge_base.snapshot,
    )
