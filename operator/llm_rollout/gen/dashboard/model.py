"""The building blocks of panels: the rollout selector, ratio/quantile/mean queries,
`Panel` and `Query`, and the field overrides thresholds use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEL = 'namespace=~"$namespace", deployment=~"$deployment"'


def sel(*extra: str) -> str:
    """The label selector of a panel query: the rollout filter plus `extra` matchers."""
    return "{" + ", ".join([SEL, *extra]) + "}"


def ratio(metric: str, by: str, good: str, window: str = "$window", *extra: str) -> str:
    """Share of `metric` increases matching `good` among all, per `by`."""
    num = f"sum by ({by}) (increase({metric}{sel(*extra, good)}[{window}]))"
    den = f"sum by ({by}) (increase({metric}{sel(*extra)}[{window}]))"
    return f"{num}\n/\n{den}"


def quantile(q: float, histogram: str, by: str = "release") -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(rate({histogram}_bucket{sel()}[$__rate_interval])))"
    )


def mean(histogram: str, by: str, *extra: str) -> str:
    return (
        f"sum by ({by}) (increase({histogram}_sum{sel(*extra)}[$window]))\n/\n"
        f"sum by ({by}) (increase({histogram}_count{sel(*extra)}[$window]))"
    )


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries, stat, state-timeline, table, bargauge
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    stepped: bool = False
    min: float | None = None
    max: float | None = None
    # field overrides (e.g. thresholds drawn dashed)
    overrides: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # panels whose series only exist once evals ran (the PromQL test lists them apart)
    needs: str = ""


def q(expr: str, legend: str, instant: bool = False) -> Query:
    return Query(expr, legend, instant)


def dashed(regex: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def dotted(regex: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dot", "dash": [0, 10]}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }
