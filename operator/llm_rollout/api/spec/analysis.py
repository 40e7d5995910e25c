"""spec.metrics, spec.analysis, spec.prometheus and spec.routing."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.durations import parse_duration
from llm_rollout.api.spec.common import (
    MAX_LIST,
    MAX_QUERY_LENGTH,
    Duration,
    Name,
    ShortText,
    _cel,
    _validations,
)
from llm_rollout.metrics.presets import MetricKind

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
