"""Analysis: advance, hold, roll back, and metrics that are unavailable
(engine/analysis.py, one rule at a time, explicit datetimes)."""

from __future__ import annotations

import pytest
from engine_support import (
    BAD,
    NAME,
    T0,
    UNSURE,
    ObsFn,
    at,
    broken,
    cond,
    started,
)

from llm_rollout.api import (
    ConditionType,
    PauseReason,
    Phase,
    Verdict,
)
from llm_rollout.engine import (
    MetricQuery,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Outcome,
    Part,
    decide,
)

# --- analysis: advance, hold, roll back ---------------------------------------------


def test_all_pass_but_min_duration_not_over_holds() -> None:
    drv = started()
    d = drv.call(30)
    assert d.outcome is Outcome.HOLD and d.reason == "MinDuration"
    assert [g.verdict for g in d.status.gates] == [Verdict.PASS]
    assert d.status.stage == "experts"


def test_all_pass_after_min_duration_advances_to_next_stage_with_cumulative_exposure() -> None:
    drv = started()
    drv.call(30)
    d = drv.call(30)
    assert d.outcome is Outcome.ADVANCE and d.reason == "GatesPassed"
    s = d.status
    assert (s.stage, s.step_index, s.step_percent, s.step) == ("beta", 0, 50, "1/2 (50%)")
    assert drv.percents() == {"experts": 100, "beta": 50, "everyone": 0}
    assert s.step_start_time == at(60) and s.stage_start_time == at(60)
    assert s.gates == []


def test_steps_advance_within_a_stage_then_to_the_next_stage() -> None:
    drv = started()
    seen = []
    for _ in range(12):
        drv.call(30)
        seen.append((drv.status.stage, drv.status.step_percent))
    assert ("beta", 50) in seen and ("beta", 100) in seen
    assert ("all", 10) in seen and ("all", 50) in seen
    assert seen.index(("beta", 50)) < seen.index(("beta", 100)) < seen.index(("all", 10))


def test_completing_the_last_stage_promotes_the_candidate() -> None:
    drv = started()
    candidate = drv.status.candidate
    outcomes = [drv.call(30).outcome for _ in range(20)]
    assert Outcome.PROMOTE in outcomes
    s = drv.status
    assert s.phase is Phase.PROMOTED and s.candidate is None and s.stable == candidate
    assert s.routing is not None and s.routing.candidate is None
    assert cond(s, ConditionType.PROGRESSING) == ("False", "Promoted")
    assert cond(s, ConditionType.DEGRADED)[0] == "False"
    assert outcomes[-1] is Outcome.NOOP


def test_inconclusive_gate_holds_and_never_advances() -> None:
    drv = started()
    for _ in range(15):
        d = drv.call(30, UNSURE)
        assert d.outcome is not Outcome.ADVANCE
    assert d.status.stage == "experts"


def test_inconclusive_until_max_duration_rolls_back() -> None:
    drv = started()
    for _ in range(21):  # 630 s > maxDuration 10m
        d = drv.call(30, UNSURE)
    assert d.status.phase is Phase.ROLLED_BACK
    assert any(x.reason == "MaxDurationExceeded" for x in drv.decisions)
    rollback = next(x for x in drv.decisions if x.outcome is Outcome.ROLLBACK)
    assert rollback.status.last_analysis_time is not None
    assert (rollback.status.last_analysis_time - T0).total_seconds() > 600


def test_gate_failing_below_failure_limit_holds_then_rolls_back() -> None:
    drv = started()
    d = drv.call(30, BAD)
    assert d.outcome is Outcome.HOLD and d.reason == "GateFailing"
    assert d.status.gates[0].consecutive_failures == 1
    d = drv.call(30, BAD)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "GateFailed"
    s = d.status
    assert s.phase is Phase.ROLLED_BACK
    assert s.routing is not None and s.routing.candidate is None
    assert set(drv.percents().values()) == {0}
    assert cond(s, ConditionType.DEGRADED) == ("True", "GateFailed")
    assert s.candidate is not None and s.release == s.candidate.id  # kept for reference


def test_an_inconclusive_look_does_not_reset_the_failure_count() -> None:
    # With failureLimit 2, Fail, Inconclusive, Fail is two failures: a look with less
    # to say cannot wipe out the evidence of failure (nor give a bad candidate more
    # lucky looks).
    drv = started()
    drv.call(30, BAD)
    d = drv.call(30, broken())
    assert d.status.gates[0].consecutive_failures == 1
    d = drv.call(30, BAD)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "GateFailed"


def test_a_pass_resets_the_failure_count_of_a_value_gate() -> None:
    gate = {"name": "latency", "kind": "Threshold", "metric": "latency-p95", "max": 2.0}
    drv = started(
        stages=[
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "5m",
                "maxDuration": "10m",
                "gates": [gate],
            }
        ]
    )

    def latency(v: float) -> ObsFn:
        return lambda q: v if q.part is Part.VALUE else 100.0

    drv.call(30, latency(3.0))
    d = drv.call(30, latency(1.0))
    assert d.status.gates[0].consecutive_failures == 0
    d = drv.call(30, latency(3.0))
    assert d.outcome is Outcome.HOLD and d.status.gates[0].consecutive_failures == 1


def test_one_fail_rolls_back_at_the_default_failure_limit() -> None:
    drv = started(analysis={"interval": "30s"})
    assert drv.spec.analysis.failure_limit == 1
    d = drv.call(30, BAD)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "GateFailed"


def test_failure_counts_per_analysis_not_per_call() -> None:
    drv = started()
    drv.call(30, BAD)
    for _ in range(5):  # calls before the next analysis is due do not analyse
        d = drv.call(1, BAD)
        assert d.outcome is Outcome.NOOP
    assert d.status.gates[0].consecutive_failures == 1


def test_max_duration_exceeded_without_advancing_rolls_back() -> None:
    drv = started()
    drv.call(30, UNSURE)
    d = drv.call(600, UNSURE)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "MaxDurationExceeded"


def test_stage_without_gates_advances_after_min_duration() -> None:
    raw_stages = [
        {"name": "experts", "cohorts": ["experts"], "minDuration": "2m"},
        {"name": "all", "cohorts": ["beta", "everyone"], "minDuration": "2m"},
    ]
    drv = started(stages=raw_stages)
    d = drv.call(60)
    assert d.outcome is Outcome.NOOP and d.reason == "Soaking"
    assert d.requeue_after == pytest.approx(60)
    d = drv.call(60)
    assert d.outcome is Outcome.ADVANCE and d.reason == "MinDurationElapsed"
    assert drv.percents() == {"experts": 100, "beta": 100, "everyone": 100}
    d = drv.call(120)
    assert d.outcome is Outcome.PROMOTE


def test_advancing_needs_the_candidate_ready() -> None:
    drv = started()
    drv.call(30)
    assert drv.status.candidate is not None
    drv.ready.discard(drv.status.candidate.id)
    d = drv.call(30)
    assert d.outcome is Outcome.HOLD and d.reason == "WaitingForRelease"
    assert d.status.stage == "experts"


# --- metrics unavailable ------------------------------------------------------------


def test_error_holds_with_metrics_unavailable_then_pauses_at_error_limit() -> None:
    drv = started()
    d = drv.call(30, broken())
    assert d.outcome is Outcome.HOLD and d.reason == "MetricsUnavailable"
    assert d.status.gates[0].verdict is Verdict.ERROR
    assert "unreachable" in d.status.gates[0].message
    assert cond(d.status, ConditionType.METRICS_AVAILABLE) == ("False", "MetricsUnavailable")
    d = drv.call(30, broken())
    assert d.outcome is Outcome.HOLD and d.status.consecutive_errors == 2
    d = drv.call(30, broken())
    assert d.outcome is Outcome.PAUSE and d.reason == "MetricsUnavailable"
    s = d.status
    assert s.phase is Phase.PAUSED
    assert s.pause is not None and s.pause.reason is PauseReason.METRICS_UNAVAILABLE
    assert cond(s, ConditionType.PAUSED) == ("True", "MetricsUnavailable")
    assert drv.percents()["experts"] == 100  # routing held as it was
    d = drv.call(30)
    assert d.outcome is Outcome.NOOP and d.status.phase is Phase.PAUSED


def test_error_never_advances_even_after_min_duration() -> None:
    drv = started()
    for _ in range(2):
        d = drv.call(40, broken(ObservationErrorKind.BAD_QUERY))
        assert d.outcome is Outcome.HOLD
    assert d.status.stage == "experts"


def test_errors_reset_after_a_clean_analysis() -> None:
    drv = started()
    drv.call(30, broken())
    drv.call(30, broken())
    d = drv.call(30, UNSURE)
    assert d.status.consecutive_errors == 0
    assert cond(d.status, ConditionType.METRICS_AVAILABLE) == ("True", "MetricsAvailable")


def test_error_limit_with_on_metrics_unavailable_rollback_rolls_back() -> None:
    drv = started(analysis={"interval": "30s", "errorLimit": 2, "onMetricsUnavailable": "Rollback"})
    drv.call(30, broken())
    d = drv.call(30, broken())
    assert d.outcome is Outcome.ROLLBACK and d.reason == "MetricsUnavailable"


def test_no_data_is_inconclusive_not_an_error() -> None:
    drv = started()
    d = drv.call(30, broken(ObservationErrorKind.EMPTY))
    assert d.outcome is Outcome.HOLD and d.reason == "Inconclusive"
    assert d.status.consecutive_errors == 0


def test_no_series_still_after_min_duration_is_missing_and_pauses() -> None:
    drv = started(analysis={"interval": "30s", "errorLimit": 2})
    d = drv.call(30, broken(ObservationErrorKind.EMPTY))
    assert d.reason == "Inconclusive"  # within the 1m soak: data may still come
    d = drv.call(30, broken(ObservationErrorKind.EMPTY))  # soak over
    assert d.outcome is Outcome.HOLD and d.reason == "MetricsUnavailable"
    assert "no series after minDuration" in d.message
    d = drv.call(30, broken(ObservationErrorKind.EMPTY))
    assert d.outcome is Outcome.PAUSE and d.reason == "MetricsUnavailable"


def test_no_series_for_one_part_only_is_a_count_of_zero() -> None:
    # A ratio whose success series does not exist yet (no success ever) is 0 successes,
    # not a missing metric, even after the soak.
    drv = started(analysis={"interval": "30s", "errorLimit": 1})

    def no_successes(q: MetricQuery) -> Observation:
        return ObservationError(ObservationErrorKind.EMPTY) if q.part is Part.SUCCESS else 100.0

    drv.call(60, no_successes)
    d = drv.call(30, no_successes)
    assert d.status.consecutive_errors == 0
    assert d.status.gates[0].verdict is Verdict.FAIL


def test_missing_observations_are_errors() -> None:
    drv = started()
    d = decide(
        drv.spec,
        drv.status,
        now=at(30),
        name=NAME,
        generation=2,
        observations={},
        ready_releases=frozenset(drv.ready),
    )
    assert d.status.gates[0].verdict is Verdict.ERROR
    assert "missing" in d.status.gates[0].message
