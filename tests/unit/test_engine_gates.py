"""Gate verdicts, table-driven, from observations keyed like plan_queries keys them."""

from __future__ import annotations

from typing import Any

import pytest

from llm_rollout.api import Gate, LLMDeploymentSpec, Stage, Verdict
from llm_rollout.engine import (
    Observation,
    ObservationError,
    ObservationErrorKind,
    Part,
    Role,
    evaluate_gate,
    evaluate_stage,
    query_key,
)

EMPTY = ObservationError(ObservationErrorKind.EMPTY, "no series")
DOWN = ObservationError(ObservationErrorKind.UNREACHABLE, "connection refused")
SEVERAL = ObservationError(ObservationErrorKind.MULTIPLE_SERIES, "3 series")

SPEC = LLMDeploymentSpec.model_validate(
    {
        "release": {"model": {"name": "m"}},
        "metrics": [
            {"name": "quality", "query": 'avg(q{release="{{ release }}"})'},
            {
                "name": "judged",
                "query": 'avg(j{release="{{ release }}"})',
                "samples": 'sum(n{release="{{ release }}"})',
            },
        ],
    }
)


def gate(**fields: Any) -> Gate:
    return Gate.model_validate({"name": "g", **fields})


def obs(
    metric: str,
    role: Role = Role.CANDIDATE,
    component: int | None = None,
    **parts: Observation,
) -> dict[str, Observation]:
    return {query_key("g", metric, role, Part(p), component): v for p, v in parts.items()}


def verdict(g: Gate, observations: dict[str, Observation]) -> Verdict:
    return evaluate_gate(SPEC, g, observations).verdict


P, F, U, E = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.ERROR  # U: unsure


@pytest.mark.parametrize(
    ("bounds", "parts", "expected"),
    [
        ({"min": 0.8}, {"value": 0.9}, P),
        ({"min": 0.8}, {"value": 0.8}, P),
        ({"min": 0.8}, {"value": 0.7}, F),
        ({"max": 0.5}, {"value": 0.7}, F),
        ({"min": 0.1, "max": 0.5}, {"value": 0.3}, P),
        ({"min": 0.8}, {"value": EMPTY}, U),
        ({"min": 0.8}, {"value": ObservationError(ObservationErrorKind.NAN)}, U),
        ({"min": 0.8}, {"value": float("nan")}, U),
        ({"min": 0.8}, {"value": DOWN}, E),
        ({"min": 0.8}, {"value": SEVERAL}, E),
        ({"min": 0.8}, {}, E),  # missing observation
    ],
)
def test_threshold_on_a_value(
    bounds: dict[str, float], parts: dict[str, Any], expected: Verdict
) -> None:
    assert (
        verdict(gate(kind="Threshold", metric="quality", **bounds), obs("quality", **parts))
        is expected
    )


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"value": 4.5, "samples": 10.0}, P),
        ({"value": 3.5, "samples": 10.0}, F),
        ({"value": 4.5, "samples": 3.0}, U),
        ({"value": 4.5, "samples": EMPTY}, U),
        ({"value": 4.5, "samples": DOWN}, E),
    ],
)
def test_threshold_with_min_samples(parts: dict[str, Any], expected: Verdict) -> None:
    g = gate(kind="Threshold", metric="judged", min=4.0, minSamples=5)
    result = evaluate_gate(SPEC, g, obs("judged", **parts))
    assert result.verdict is expected
    if expected is P:
        assert result.samples == 10 and result.value == 4.5 and result.threshold == ">= 4"


def test_threshold_on_a_ratio_is_judged_on_its_confidence_sequence() -> None:
    # 2 errors in 100 is a point value of 2%, but not yet evidence of <= 5%.
    g = gate(kind="Threshold", metric="error-rate", max=0.05)
    r = evaluate_gate(SPEC, g, obs("error-rate", success=2.0, total=100.0))
    assert (r.verdict, r.value, r.samples) == (U, 0.02, 100)
    assert r.interval is not None and r.interval[1] > 0.05
    r = evaluate_gate(SPEC, g, obs("error-rate", success=2.0, total=1000.0))
    assert r.verdict is P and r.interval is not None and r.interval[1] <= 0.05


@pytest.mark.parametrize(
    ("success", "total", "bounds", "expected"),
    [
        (95.0, 100.0, {"min": 0.6}, P),
        (20.0, 100.0, {"min": 0.6}, F),
        (62.0, 100.0, {"min": 0.6}, U),  # interval straddles 0.6
        (EMPTY, 100.0, {"min": 0.6}, F),  # no positive series: 0 successes
        (0.0, 0.0, {"min": 0.6}, U),
        (EMPTY, EMPTY, {"min": 0.6}, U),  # no traffic yet
        (40.0, 40.0, {"min": 0.6}, U),  # below minSamples 50
        (0.0, 1000.0, {"max": 0.05}, P),
        (100.0, 1000.0, {"max": 0.05}, F),
        (DOWN, 100.0, {"min": 0.6}, E),
        (95.0, SEVERAL, {"min": 0.6}, E),
    ],
)
def test_ratio_on_the_confidence_sequence(
    success: Observation, total: Observation, bounds: dict[str, float], expected: Verdict
) -> None:
    g = gate(kind="Ratio", metric="feedback-positive-rate", minSamples=50, **bounds)
    r = evaluate_gate(SPEC, g, obs("feedback-positive-rate", success=success, total=total))
    assert r.verdict is expected, r.message
    if expected in (P, F):
        assert r.interval is not None and r.interval[0] <= (r.value or 0) <= r.interval[1]
        assert "0.95 confidence sequence" in r.threshold


def test_ratio_gate_on_a_value_metric_is_an_error() -> None:
    r = evaluate_gate(SPEC, gate(kind="Ratio", metric="quality", min=0.5), obs("quality", value=1))
    assert r.verdict is E and "not a ratio or scores metric" in r.message


def test_ratio_gate_clamps_extrapolated_counts() -> None:
    # increase() extrapolates: successes can exceed the total by a hair.
    g = gate(kind="Ratio", metric="heuristic-pass-rate", min=0.5)
    r = evaluate_gate(SPEC, g, obs("heuristic-pass-rate", success=100.4, total=100.0))
    assert r.verdict is P and r.value == 1.0


def compare_obs(metric: str, cand: dict[str, Any], stable: dict[str, Any]) -> dict[str, Any]:
    return obs(metric, Role.CANDIDATE, **cand) | obs(metric, Role.STABLE, **stable)


@pytest.mark.parametrize(
    ("metric", "extra", "cand", "stable", "expected"),
    [
        # higher is better (feedback), margin 0.02
        ("feedback-positive-rate", {}, (90_000, 100_000), (90_500, 100_000), P),
        ("feedback-positive-rate", {}, (900, 1000), (905, 1000), U),
        ("feedback-positive-rate", {}, (750, 1000), (900, 1000), F),
        # lower is better by default for error-rate, margin 0.01
        ("error-rate", {}, (100, 10_000), (100, 10_000), P),
        ("error-rate", {}, (600, 10_000), (100, 10_000), F),
        ("error-rate", {}, (250, 10_000), (100, 10_000), U),
        # an explicit direction wins over the preset's
        ("error-rate", {"direction": "higherIsBetter"}, (60, 1000), (10, 1000), P),
        # samples
        ("feedback-positive-rate", {"minSamples": 2000}, (900, 1000), (900, 1000), U),
        ("feedback-positive-rate", {}, (900, 1000), (EMPTY, EMPTY), U),
    ],
)
def test_compare_ratio_non_inferiority(
    metric: str,
    extra: dict[str, Any],
    cand: tuple[Any, Any],
    stable: tuple[Any, Any],
    expected: Verdict,
) -> None:
    margin = 0.02 if metric == "feedback-positive-rate" else 0.01
    g = gate(kind="Compare", metric=metric, margin=margin, **extra)
    o = compare_obs(
        metric, {"success": cand[0], "total": cand[1]}, {"success": stable[0], "total": stable[1]}
    )
    r = evaluate_gate(SPEC, g, o)
    assert r.verdict is expected, r.message
    if expected is not U:
        assert r.interval is not None and r.interval[0] <= (r.value or 0) <= r.interval[1]
        assert r.stable_value is not None and r.stable_samples is not None


@pytest.mark.parametrize(
    ("cand", "stable", "extra", "expected"),
    [
        ({"value": 1.1, "samples": 100.0}, {"value": 1.0, "samples": 100.0}, {}, P),
        ({"value": 1.5, "samples": 100.0}, {"value": 1.0, "samples": 100.0}, {}, F),
        ({"value": 1.1, "samples": 100.0}, {"value": 1.0, "samples": 5.0}, {"minSamples": 50}, U),
        ({"value": 1.1, "samples": 100.0}, {"value": EMPTY, "samples": EMPTY}, {}, U),
        ({"value": 1.1, "samples": 100.0}, {"value": DOWN, "samples": 1.0}, {}, E),
    ],
)
def test_compare_values_on_point_values(
    cand: dict[str, Any], stable: dict[str, Any], extra: dict[str, Any], expected: Verdict
) -> None:
    g = gate(kind="Compare", metric="latency-p95", margin=0.2, **extra)  # lower is better
    r = evaluate_gate(SPEC, g, compare_obs("latency-p95", cand, stable))
    assert r.verdict is expected, r.message
    assert "candidate <= stable + 0.2" in r.threshold


def test_compare_value_higher_is_better() -> None:
    g = gate(kind="Compare", metric="quality", margin=0.05)
    assert verdict(g, compare_obs("quality", {"value": 0.86}, {"value": 0.9})) is P
    assert verdict(g, compare_obs("quality", {"value": 0.8}, {"value": 0.9})) is F


def composite_obs(q: Observation, s: Observation, t: Observation) -> dict[str, Observation]:
    return obs("quality", component=0, value=q) | obs(
        "feedback-positive-rate", component=1, success=s, total=t
    )


@pytest.mark.parametrize(
    ("observations", "bounds", "expected"),
    [
        (composite_obs(0.9, 60.0, 100.0), {"min": 0.75}, P),  # (2*0.9 + 0.6) / 3 = 0.8
        (composite_obs(0.9, 60.0, 100.0), {"min": 0.85}, F),
        (composite_obs(0.9, 60.0, 100.0), {"max": 0.7}, F),
        (composite_obs(0.9, EMPTY, EMPTY), {"min": 0.5}, U),
        (composite_obs(DOWN, 60.0, 100.0), {"min": 0.5}, E),
    ],
)
def test_composite_weighted_mean(
    observations: dict[str, Observation], bounds: dict[str, float], expected: Verdict
) -> None:
    g = gate(
        kind="Composite",
        components=[{"metric": "quality", "weight": 2}, {"metric": "feedback-positive-rate"}],
        **bounds,
    )
    r = evaluate_gate(SPEC, g, observations)
    assert r.verdict is expected, r.message
    if expected is P:
        assert r.value == pytest.approx(0.8)


def test_stage_evaluation_carries_failure_counts_by_gate_name() -> None:
    stage = Stage.model_validate(
        {
            "name": "s",
            "cohorts": ["everyone"],
            "gates": [
                {"name": "g", "kind": "Threshold", "metric": "quality", "min": 0.8},
                {"name": "h", "kind": "Threshold", "metric": "quality", "min": 0.0},
            ],
        }
    )
    o = obs("quality", value=0.5) | {query_key("h", "quality", Role.CANDIDATE, Part.VALUE): 0.5}
    first = evaluate_stage(SPEC, stage, o, [])
    second = evaluate_stage(SPEC, stage, o, first)
    assert [r.consecutive_failures for r in second] == [2, 0]
    assert [r.verdict for r in second] == [F, P]


def test_gate_bounds_for_dashboards_include_compare_margins() -> None:
    from llm_rollout.api import LLMDeploymentSpec
    from llm_rollout.engine.gates import gate_bounds

    spec = LLMDeploymentSpec.model_validate(
        {
            "release": {"model": {"name": "m"}},
            "stages": [
                {
                    "name": "all",
                    "cohorts": ["everyone"],
                    "gates": [
                        {"name": "t", "kind": "Threshold", "metric": "expert-rating", "min": 3.5},
                        {
                            "name": "c",
                            "kind": "Compare",
                            "metric": "feedback-positive-rate",
                            "margin": 0.03,
                        },
                        {"name": "e", "kind": "Compare", "metric": "error-rate", "margin": 0.01},
                    ],
                }
            ],
        }
    )
    assert gate_bounds(spec, spec.stages[0]) == {
        "t": (3.5, None),
        "c": (-0.03, None),
        "e": (None, 0.01),
    }


def score_obs(gate_name: str, counts: dict[int, float]) -> dict[str, Observation]:
    """expert-rating bucket observations (cumulative counts) from a count per score."""
    out: dict[str, Observation] = {}
    below = 0.0
    for le in range(1, 6):
        below += counts.get(le, 0.0)
        key = query_key(gate_name, "expert-rating", Role.CANDIDATE, Part.BUCKET, None, float(le))
        out[key] = below
    return out


def test_expert_rating_is_a_mean_of_scores_on_its_confidence_sequence() -> None:
    g = gate(kind="Threshold", metric="expert-rating", min=3.5, minSamples=20)
    strong = evaluate_gate(SPEC, g, score_obs("g", {3: 10, 4: 60, 5: 130}))
    assert strong.verdict is P and strong.value == pytest.approx((30 + 240 + 650) / 200)
    assert strong.interval is not None and 3.5 <= strong.interval[0] <= strong.value
    assert strong.samples == 200 and "1 .. 5" not in strong.message
    weak = evaluate_gate(SPEC, g, score_obs("g", {1: 40, 2: 60, 3: 60, 4: 30, 5: 10}))
    assert weak.verdict is F and weak.interval is not None and weak.interval[1] < 3.5
    few = evaluate_gate(SPEC, g, score_obs("g", {5: 10}))
    assert few.verdict is U and "10 samples, need 20" in few.message
    none = evaluate_gate(SPEC, g, {k: EMPTY for k in score_obs("g", {})})
    assert none.verdict is U and none.samples == 0


def test_a_confident_verdict_sticks_for_the_rest_of_the_step() -> None:
    # The sequences hold at every look at once, so their running intersection does
    # too: evidence that later reads weaker (a counter going back) cannot undo a Fail.
    g = gate(kind="Ratio", metric="feedback-positive-rate", min=0.6)
    first = evaluate_gate(SPEC, g, obs("feedback-positive-rate", success=20.0, total=100.0))
    assert first.verdict is F and first.interval is not None
    reset = obs("feedback-positive-rate", success=5.0, total=10.0)  # the counters restarted
    later = evaluate_gate(SPEC, g, reset, previous=first)
    assert later.verdict is F and later.interval is not None
    assert later.interval[1] == pytest.approx(first.interval[1])
    fresh = evaluate_gate(SPEC, g, reset)
    assert fresh.verdict is U
    # Another test (the bound changed) does not inherit the old interval.
    moved = gate(kind="Ratio", metric="feedback-positive-rate", min=0.5)
    other = evaluate_gate(SPEC, moved, reset, previous=first)
    assert other.interval is not None and other.interval[1] > first.interval[1]
