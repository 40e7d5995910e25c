"""Finishing a decision: conditions, history, and the engine's purity
(engine/record.py, explicit datetimes)."""

from __future__ import annotations

from datetime import datetime

import pytest
from engine_support import (
    BAD,
    FB_GATE,
    GOOD,
    NAME,
    UNSURE,
    at,
    make_spec,
    started,
)

from llm_rollout.api import (
    HISTORY_LIMIT,
    ConditionStatus,
    ConditionType,
    LLMDeploymentStatus,
    ManualAction,
    Phase,
)
from llm_rollout.engine import (
    Outcome,
    analysis_due,
    decide,
)

# --- conditions, history, purity ----------------------------------------------------


def test_condition_transition_time_changes_only_on_flips() -> None:
    drv = started()
    before = drv.status.condition(ConditionType.PROGRESSING)
    assert before is not None and before.status is ConditionStatus.TRUE
    drv.call(30)
    drv.call(30)
    after = drv.status.condition(ConditionType.PROGRESSING)
    assert after is not None and after.last_transition_time == before.last_transition_time
    assert after.reason == "GatesPassed" and after.observed_generation == drv.generation
    drv.call(30, BAD)
    drv.call(30, BAD)
    rolled = drv.status.condition(ConditionType.PROGRESSING)
    assert rolled is not None and rolled.status is ConditionStatus.FALSE
    assert rolled.last_transition_time == at(drv.t)


def test_noop_decisions_leave_the_status_unchanged() -> None:
    drv = started()
    drv.call(30)
    s = drv.status
    d = drv.call(1)
    assert d.outcome is Outcome.NOOP and d.status == s and not d.notable


def test_history_is_bounded_and_records_transitions() -> None:
    drv = started()
    for i in range(40):
        drv.call(1, action=ManualAction("abort" if i % 2 == 0 else "retry", str(i)))
    assert len(drv.status.history) == HISTORY_LIMIT
    assert drv.status.history[-1].decision == "Retry"


def test_repeated_holds_with_the_same_reason_are_recorded_once() -> None:
    drv = started()
    for _ in range(5):
        drv.call(30, UNSURE)
    holds = [h for h in drv.status.history if h.decision == "Hold"]
    assert len(holds) == 1 and holds[0].reason == "Inconclusive"
    assert sum(d.notable for d in drv.decisions[-5:]) == 1


def test_decide_does_not_mutate_its_input() -> None:
    drv = started()
    snapshot = drv.status.model_dump()
    decide(
        drv.spec,
        drv.status,
        now=at(30),
        name=NAME,
        generation=9,
        observations={},
        ready_releases=frozenset(drv.ready),
        action=ManualAction("abort", "1"),
    )
    assert drv.status.model_dump() == snapshot


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        decide(
            make_spec(),
            LLMDeploymentStatus(),
            now=datetime(2025, 1, 1),
            name=NAME,
            generation=1,
            observations={},
            ready_releases=frozenset(),
        )


def test_analysis_due_tolerates_early_timers() -> None:
    drv = started()
    drv.call(30)
    s, spec = drv.status, drv.spec
    assert not analysis_due(spec, s, at(30 + 20))
    assert not analysis_due(spec, s, at(30 + 29.3))  # more than 2% early
    assert analysis_due(spec, s, at(30 + 29.5))  # within 2% of the interval
    assert analysis_due(spec, s, at(0))  # clock went back: do not stall


def test_no_analysis_at_the_start_of_a_step() -> None:
    # The first look of a step comes one interval after it began: at its start there
    # is no evidence (and the previous step's must not count).
    drv = started()
    assert drv.status.last_analysis_time is None
    assert not analysis_due(drv.spec, drv.status, at(0))
    assert not analysis_due(drv.spec, drv.status, at(29))
    assert drv.decisions[-1].requeue_after == pytest.approx(30)
    drv.call(30)
    drv.call(30)  # minDuration 1m over: all pass -> next stage
    assert drv.status.stage == "beta" and drv.status.last_analysis_time == at(60)
    assert not analysis_due(drv.spec, drv.status, at(60))
    assert not analysis_due(drv.spec, drv.status, at(75))
    assert analysis_due(drv.spec, drv.status, at(90))


def test_analyses_follow_the_configured_interval() -> None:
    # Driven by requeue_after, as the operator is: one look per interval (plus the one
    # at the end of minDuration), not 10% more.
    drv = started(
        stages=[
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "5m",
                "maxDuration": "50m",
                "gates": [FB_GATE],
            }
        ]
    )
    looks = 0
    while drv.t < 3100 and drv.status.phase is Phase.PROGRESSING:
        dt = drv.decisions[-1].requeue_after
        assert dt is not None
        before = drv.status.last_analysis_time
        drv.call(dt, UNSURE)
        looks += drv.status.last_analysis_time != before
    assert drv.status.phase is Phase.ROLLED_BACK
    assert drv.decisions[-1].reason == "MaxDurationExceeded"
    # 50m / 30s looks; the soak look falls on an interval look; the rollback comes on
    # the wake-up just after maxDuration, without an analysis.
    assert looks == 3000 // 30


def test_a_pass_after_max_duration_rolls_back() -> None:
    # maxDuration is the limit for getting a pass: one that comes after it is too late.
    drv = started(
        stages=[
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "2m30s",
                "maxDuration": "50m",
                "gates": [FB_GATE],
            }
        ]
    )
    drv.call(2990, UNSURE)
    assert drv.decisions[-1].outcome is Outcome.HOLD
    d = drv.call(40, GOOD)  # at 3030 s, 30 s past maxDuration, all gates pass
    assert d.outcome is Outcome.ROLLBACK and d.reason == "MaxDurationExceeded"
    assert d.status.phase is Phase.ROLLED_BACK


def test_requeue_after_points_at_the_next_thing_time_changes() -> None:
    drv = started(analysis={"interval": "25s", "failureLimit": 2})
    d = drv.call(25)  # analysed at 25, min duration ends at 60
    assert d.requeue_after == pytest.approx(25)
    d = drv.call(25)
    assert d.outcome is Outcome.HOLD and d.requeue_after == pytest.approx(10)
    d = drv.call(10)  # an extra analysis right when the soak ends
    assert d.outcome is Outcome.ADVANCE
    drv.call(1, action=ManualAction("abort", "1"))
    assert drv.decisions[-1].requeue_after is None
