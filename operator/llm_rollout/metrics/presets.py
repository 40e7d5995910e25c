"""Built-in metrics, usable by name in gates without defining them in `spec.metrics`.

They query what the router exports (names in metrics/names.py; counters get the
`_total` suffix from prometheus_client) and what the eval runner publishes. Every
selector pins namespace, deployment and release, and live-traffic metrics also the
exposed cohorts, so a Compare gate measures candidate and stable on the same users.
A metric in `spec.metrics` with a preset's name replaces the preset (mesh users whose
error rate comes from Istio, say).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from llm_rollout.metrics.names import (
    EVAL_SCORE,
    FEEDBACK,
    FEEDBACK_SCORE,
    HEURISTIC_CHECKS,
    REQUEST_DURATION,
    REQUESTS,
    TTFT,
)


class MetricKind(StrEnum):
    VALUE = "value"  # one number over the recent window (plus optionally a sample count)
    RATIO = "ratio"  # successes / total, counted since the step began: confidence sequences
    SCORES = "scores"  # a histogram of bounded scores, counted since the step began


# The scores of llm_feedback_score (router/metrics.py SCORE_BUCKETS), as its `le` labels.
SCORE_LEVELS: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class MetricTemplate:
    """A metric as PromQL templates (see metrics.promql for the variables)."""

    kind: MetricKind
    query: str = ""  # value metrics
    success: str = ""  # ratio metrics
    total: str = ""
    samples: str = ""  # value metrics: optional count of observations behind the value
    # scores metrics: (score, count of scores <= it) per level, lowest first; the scale
    # runs from the first level to the last.
    buckets: tuple[tuple[float, str], ...] = ()
    description: str = ""
    lower_is_better: bool = False
    # Defaults for the gate-level parameters {{ suite }} / {{ criterion }}.
    parameter_defaults: Mapping[str, str] = field(default_factory=dict)


_LIVE = (
    'namespace="{{ namespace }}",deployment="{{ name }}",release="{{ release }}",'
    'cohort=~"{{ cohorts }}"'
)
_W = "[{{ window }}]"


@dataclass(frozen=True)
class CountForm:
    """How a live count template splits for batching (metrics/batch.py): the counter,
    the matchers beyond the rollout's own (a template, '' if none), and B, the
    counters' sum when the step's evidence began."""

    metric: str
    shared: str
    baseline: str


# Template -> its batchable form, for every template `live_count` built.
COUNT_FORMS: dict[str, CountForm] = {}


def live_count(metric: str, extra: str = "") -> str:
    """PromQL template: the count of `metric` for the rollout's release and exposed
    cohorts since its step's evidence began (`count_since_start`); batchable."""
    template = count_since_start(metric, _LIVE + extra)
    selector = f"{metric}{{{_LIVE + extra}}}"
    COUNT_FORMS[template] = CountForm(
        metric=metric,
        shared=extra.removeprefix(","),
        baseline=f"sum({selector} @ {{{{ start }}}}) or vector(0)",
    )
    return template


def count_since_start(metric: str, matchers: str) -> str:
    """PromQL template: the count of `metric{matchers}` since the step's evidence began.

    The counters now minus their values when the step began (`@ {{ start }}`; a series
    that did not exist then counts from 0): exactly the counts Prometheus scraped, where
    increase() would extrapolate them to the ends of its range and so invent samples
    with the observed split. If a counter reset in the step (a router restarted), the
    difference is meaningless and increase() stands in.
    """
    selector = f"{metric}{{{matchers}}}"
    return (
        f"(sum({selector}) - (sum({selector} @ {{{{ start }}}}) or vector(0)))"
        f" and on() (sum(resets({selector}{_W})) == 0)"
        f" or sum(increase({selector}{_W}))"
    )


def _recent(metric: str) -> str:
    """The count of `metric` over the recent window: the samples behind a value."""
    return f"sum(increase({metric}{{{_LIVE}}}{_W}))"


_EXPERT = ',source="expert",criterion=~"{{ criterion }}"'


def _score_buckets(histogram: str, extra: str) -> tuple[tuple[float, str], ...]:
    # prometheus_client writes bucket bounds as Go floats: le="1.0"
    return tuple(
        (le, live_count(f"{histogram}_bucket", f'{extra},le="{le}"')) for le in SCORE_LEVELS
    )


def _p95(histogram: str) -> str:
    return f"histogram_quantile(0.95, sum by (le) (rate({histogram}_bucket{{{_LIVE}}}{_W})))"


PRESETS: Mapping[str, MetricTemplate] = {
    "feedback-positive-rate": MetricTemplate(
        kind=MetricKind.RATIO,
        success=live_count(FEEDBACK, ',rating="positive"'),
        total=live_count(FEEDBACK),
        description="Share of feedback (thumbs or 1-5 scores, users and experts) that is "
        "positive (thumbs up, score 4-5).",
    ),
    "expert-rating": MetricTemplate(
        kind=MetricKind.SCORES,
        buckets=_score_buckets(FEEDBACK_SCORE, _EXPERT),
        description="Mean expert score (1-5) of the `criterion` (default overall), from "
        "the count of each score; samples = number of expert scores.",
        parameter_defaults={"criterion": "overall"},
    ),
    "heuristic-pass-rate": MetricTemplate(
        kind=MetricKind.RATIO,
        success=live_count(HEURISTIC_CHECKS, ',result="pass"'),
        total=live_count(HEURISTIC_CHECKS),
        description="Share of online heuristic checks (all checks) that passed.",
    ),
    "error-rate": MetricTemplate(
        kind=MetricKind.RATIO,
        success=live_count(REQUESTS, ',code=~"5.."'),
        total=live_count(REQUESTS),
        description="Share of requests answered with a 5xx status (lower is better).",
        lower_is_better=True,
    ),
    "latency-p95": MetricTemplate(
        kind=MetricKind.VALUE,
        query=_p95(REQUEST_DURATION),
        samples=_recent(REQUEST_DURATION + "_count"),
        description="95th percentile of request duration, seconds (lower is better).",
        lower_is_better=True,
    ),
    "ttft-p95": MetricTemplate(
        kind=MetricKind.VALUE,
        query=_p95(TTFT),
        samples=_recent(TTFT + "_count"),
        description="95th percentile of time to first token, seconds (lower is better).",
        lower_is_better=True,
    ),
    "eval-score": MetricTemplate(
        kind=MetricKind.VALUE,
        query=(
            f'avg(last_over_time({EVAL_SCORE}{{namespace="{{{{ namespace }}}}",'
            f'deployment="{{{{ name }}}}",release="{{{{ release }}}}",'
            f'suite=~"{{{{ suite }}}}",criterion=~"{{{{ criterion }}}}"}}{_W}))'
        ),
        description="Offline eval score (0..1) of the release from its eval runs "
        "(llm_eval_score, docs/evals.md); the gate's `suite` and `criterion` (a check, a "
        "judge or `composite`) select the series (default: the mean of all).",
    ),
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
