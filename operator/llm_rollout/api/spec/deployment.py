"""LLMDeploymentSpec: the whole spec and the rules that span its parts."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.cohorts import DEFAULT_COHORT, DEFAULT_USER_ID_HEADER, Cohort
from llm_rollout.api.spec.analysis import Analysis, MetricSpec, PrometheusSpec, RoutingSpec
from llm_rollout.api.spec.common import (
    _PRESETS_CEL,
    MAX_CHECKS,
    MAX_COHORTS,
    MAX_EVALS,
    MAX_METRICS,
    MAX_STAGES,
    Name,
    _cel,
    _listed,
    _require_unique,
    _unique_names_cel,
    _validations,
)
from llm_rollout.api.spec.evals import EvalSuite
from llm_rollout.api.spec.freshness import FreshnessSpec
from llm_rollout.api.spec.release import ReleaseSpec
from llm_rollout.api.spec.stages import Stage, default_cohorts, default_stages
from llm_rollout.api.spec.tracing import TracingSpec
from llm_rollout.heuristics.checks import CheckSpec, parse_checks
from llm_rollout.metrics.presets import PRESET_NAMES, PRESETS, MetricKind


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
    tracing: TracingSpec = Field(
        default_factory=TracingSpec,
        description="OpenTelemetry traces of the router: redaction of recorded content "
        "(see docs/observability.md).",
    )
    freshness: FreshnessSpec = Field(
        default_factory=FreshnessSpec,
        description="How old the stable release's knowledge base may get.",
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
