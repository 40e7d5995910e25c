"""The benchmark's cells: a rollout spec (one stage, one step) and the true traffic behind it.

Every rollout: stage `beta` (cohort beta), one step at 100% (50% where a Compare gate needs
stable traffic in the cohort), analysis interval 30s (5s in the cadence cells), minDuration
2m30s, maxDuration 50m, confidence 0.95, failureLimit the spec's default unless set.
Event rates are per 30 s of the candidate's traffic, whatever the cadence, arriving as a
Poisson process (uniform times); `--arrivals fixed` draws exactly the rate per 30 s. Every
cell also has 200 requests per 30 s (0.5% 5xx unless the cell sets it), each one unit for
the sample-ratio check; stable gets the rest of the cohort (traffic.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.soundness.traffic import COHORT, Traffic

FEEDBACK_GATE: dict[str, Any] = {
    "name": "feedback",
    "kind": "Ratio",
    "metric": "feedback-positive-rate",
    "min": 0.70,
    "minSamples": 50,
}
ERROR_GATE: dict[str, Any] = {
    "name": "errors",
    "kind": "Ratio",
    "metric": "error-rate",
    "max": 0.02,
}
COMPARE_GATE: dict[str, Any] = {
    "name": "vs-stable",
    "kind": "Compare",
    "metric": "feedback-positive-rate",
    "margin": 0.03,
    "minSamples": 50,
}
EXPERT_GATE: dict[str, Any] = {
    "name": "experts",
    "kind": "Threshold",
    "metric": "expert-rating",
    "min": 3.5,
    "minSamples": 20,
}

# P(score = 1..5): means exactly 3.5 (the gate's bound) and 3.75.
SCORES_AT_BOUND = (0.05, 0.10, 0.30, 0.40, 0.15)
SCORES_GOOD = (0.05, 0.05, 0.25, 0.40, 0.25)


def mean_score(probs: tuple[float, ...]) -> float:
    return sum((i + 1) * p for i, p in enumerate(probs)) / sum(probs)


@dataclass(frozen=True)
class Cell:
    name: str
    group: str
    truth: str  # the true value(s), for the table
    correct: str  # what a sound gate does: "promote", "not promote" (at the bound), "roll back"
    gates: tuple[dict[str, Any], ...]
    traffic: Traffic
    interval: str = "30s"
    percent: int = 100
    failure_limit: int | None = None  # None: the spec's default
    min_duration: str = "2m30s"
    max_duration: str = "50m"
    confidence: float = 0.95
    extra_analysis: dict[str, Any] = field(default_factory=dict)

    def spec(self, revision: str) -> dict[str, Any]:
        """The LLMDeployment spec (wire names) with the model at `revision`."""
        stage: dict[str, Any] = {
            "name": "beta",
            "cohorts": [COHORT],
            "minDuration": self.min_duration,
            "maxDuration": self.max_duration,
            "gates": [dict(g) for g in self.gates],
        }
        if self.percent != 100:
            stage["steps"] = [self.percent]
        analysis: dict[str, Any] = {
            "interval": self.interval,
            "confidence": self.confidence,
            **self.extra_analysis,
        }
        if self.failure_limit is not None:
            analysis["failureLimit"] = self.failure_limit
        return {
            "release": {"model": {"name": "llama", "revision": revision}},
            "stages": [stage],
            "analysis": analysis,
        }


def _verdict(margin: float) -> str:
    """What a sound gate does, by how far the truth is on the good side of the bound."""
    if abs(margin) < 1e-9:
        return "not promote"  # at the bound: promote at most at the error rate
    return "promote" if margin > 0 else "roll back"


def _ratio(p: float, per_30s: float = 20, interval: str = "30s", suffix: str = "") -> Cell:
    correct = _verdict(p - 0.70)
    return Cell(
        name=f"ratio-p{round(p * 100):03d}{suffix}",
        group="1 ratio feedback >= 0.70",
        truth=f"p={p:.2f}, {per_30s:g}/30s, every {interval}",
        correct=correct,
        gates=(FEEDBACK_GATE,),
        interval=interval,
        traffic=Traffic(feedback=per_30s, positive=p, stable_positive=p),
    )


def _errors(rate: float) -> Cell:
    correct = _verdict(0.02 - rate)
    return Cell(
        name=f"errors-{round(rate * 1000):03d}",
        group="2 error-rate <= 0.02",
        truth=f"5xx={rate:.3f}, 200 req/30s",
        correct=correct,
        gates=(ERROR_GATE,),
        traffic=Traffic(requests=200, errors=rate, stable_errors=rate),
    )


def _compare(
    candidate: float, per_30s: float = 20, interval: str = "30s", suffix: str = ""
) -> Cell:
    correct = _verdict(candidate - 0.77)
    return Cell(
        name=f"compare-{round(candidate * 100):03d}{suffix}",
        group="3 compare, margin 0.03",
        truth=f"cand {candidate:.2f} vs stable 0.80, {per_30s:g}/30s each, every {interval}",
        correct=correct,
        gates=(COMPARE_GATE,),
        percent=50,
        interval=interval,
        traffic=Traffic(feedback=per_30s, positive=candidate, stable_positive=0.80),
    )


COMPARE_ERRORS_GATE: dict[str, Any] = {
    "name": "errors-vs-stable",
    "kind": "Compare",
    "metric": "error-rate",
    "margin": 0.01,
}


def _compare_errors(candidate: float) -> Cell:
    """Error rates near 0: the exact difference bound until each release has enough
    errors for the normal approximation, the asymptotic one after."""
    correct = _verdict(0.02 - candidate)
    return Cell(
        name=f"compare-errors-{round(candidate * 1000):03d}",
        group="3b compare error-rate, margin 0.01",
        truth=f"5xx cand {candidate:.3f} vs stable 0.010, 200 req/30s each",
        correct=correct,
        gates=(COMPARE_ERRORS_GATE,),
        percent=50,
        traffic=Traffic(requests=200, errors=candidate, stable_errors=0.01),
    )


def _expert(scores: tuple[float, ...]) -> Cell:
    mean = mean_score(scores)
    correct = _verdict(mean - 3.5)
    return Cell(
        name=f"expert-{round(mean * 100):03d}",
        group="4 expert-rating >= 3.5",
        truth=f"mean {mean:.2f} P={list(scores)}, 20/30s",
        correct=correct,
        gates=(EXPERT_GATE,),
        traffic=Traffic(experts=20, scores=scores, stable_scores=scores),
    )


def _two(p: float) -> Cell:
    correct = _verdict(p - 0.70)
    return Cell(
        name=f"two-gates-p{round(p * 100):03d}",
        group="5 feedback + error-rate",
        truth=f"p={p:.2f} 20/30s, 5xx=0.005 200 req/30s",
        correct=correct,
        gates=(FEEDBACK_GATE, ERROR_GATE),
        traffic=Traffic(
            feedback=20,
            positive=p,
            stable_positive=p,
            requests=200,
            errors=0.005,
            stable_errors=0.005,
        ),
    )


CELLS: tuple[Cell, ...] = (
    _ratio(0.68),
    _ratio(0.70),
    _ratio(0.75),
    _ratio(0.80),
    _ratio(0.70, interval="5s", suffix="-5s"),
    _ratio(0.80, interval="5s", suffix="-5s"),
    _ratio(0.70, per_30s=200, suffix="-200"),
    _ratio(0.80, per_30s=200, suffix="-200"),
    _ratio(0.70, per_30s=200, interval="5s", suffix="-200-5s"),
    _errors(0.02),
    _errors(0.025),
    _errors(0.005),
    _compare(0.77),
    _compare(0.80),
    _compare(0.82),
    # 5 points on the good side of the margin (candidate - stable = +0.02 against -0.03)
    _compare(0.77, per_30s=200, suffix="-200"),
    _compare(0.82, per_30s=200, suffix="-200"),
    _compare(0.77, interval="5s", suffix="-5s"),
    _compare_errors(0.02),
    _compare_errors(0.005),
    _expert(SCORES_AT_BOUND),
    _expert(SCORES_GOOD),
    _two(0.70),
    _two(0.80),
)
BY_NAME = {c.name: c for c in CELLS}
assert len(BY_NAME) == len(CELLS)
assert abs(mean_score(SCORES_AT_BOUND) - 3.5) < 1e-12
assert abs(mean_score(SCORES_GOOD) - 3.75) < 1e-12


def select(names: str | None) -> list[Cell]:
    """Cells by comma-separated names or name prefixes (`ratio` = every ratio cell)."""
    if not names:
        return list(CELLS)
    chosen: list[Cell] = []
    for want in (n.strip() for n in names.split(",") if n.strip()):
        hits = [c for c in CELLS if c.name == want] or [c for c in CELLS if c.name.startswith(want)]
        if not hits:
            raise SystemExit(f"unknown cell {want!r}; cells: {', '.join(BY_NAME)}")
        chosen += [c for c in hits if c not in chosen]
    return chosen


def with_overrides(
    cell: Cell, *, failure_limit: int | None = None, arrivals: str | None = None
) -> Cell:
    if failure_limit is not None:
        cell = replace(cell, failure_limit=failure_limit)
    if arrivals is not None:
        cell = replace(cell, traffic=replace(cell.traffic, arrivals=arrivals))
    return cell
