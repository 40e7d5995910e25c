"""The rollout state machine, one rule at a time (explicit datetimes throughout)."""

from __future__ import annotations

from datetime import datetime

import pytest
from engine_support import (
    BAD,
    FB_GATE,
    GOOD,
    NAME,
    NS,
    T0,
    UNSURE,
    Driver,
    ObsFn,
    at,
    broken,
    make_spec,
    respec,
    started,
    with_revision,
)

from llm_rollout.api import (
    HISTORY_LIMIT,
    ConditionStatus,
    ConditionType,
    LLMDeploymentStatus,
    ManualAction,
    PauseReason,
    Phase,
    Verdict,
    release_id,
)
from llm_rollout.engine import (
    Decision,
    MetricQuery,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Outcome,
    Part,
    analysis_due,
    decide,
    mark_failed,
    mark_invalid,
    plan_queries,
)


def cond(status: LLMDeploymentStatus, t: ConditionType) -> tuple[str, str]:
    c = status.condition(t)
    assert c is not None
    return c.status.value, c.reason


# --- first release, new releases ----------------------------------------------------


def test_first_release_is_promoted_directly_and_routes_everyone_to_it() -> None:
    spec = make_spec()
    d = Driver(spec, ready={release_id(spec)}).call()
    assert d.outcome is Outcome.PROMOTE and d.reason == "FirstRelease"
    s = d.status
    assert s.phase is Phase.PROMOTED
    assert s.stable is not None and s.stable.id == release_id(spec) and s.candidate is None
    assert s.routing is not None and s.routing.candidate is None
    assert all(r.candidate_percent == 0 for r in s.routing.routes)
    assert [r.cohort for r in s.routing.routes] == ["experts", "beta", "everyone"]
    assert cond(s, ConditionType.READY) == ("True", "StableReady")
    assert s.release == release_id(spec) and s.stage == "" and s.step == ""


def test_first_release_not_ready_yet_is_stable_but_not_ready() -> None:
    d = Driver(make_spec()).call()
    assert d.status.phase is Phase.PROMOTED
    assert cond(d.status, ConditionType.READY) == ("False", "StableNotReady")


def test_new_release_starts_at_first_stage_and_waits_for_its_pods() -> None:
    first = make_spec()
    drv = Driver(first, ready={release_id(first)})
    drv.call()
    drv.apply(with_revision(first, "2"), ready=False)
    d = drv.call(10)
    assert d.outcome is Outcome.START and d.reason == "NewRelease"
    s = d.status
    assert s.phase is Phase.PROGRESSING and s.stage_index == 0 and s.step_index == 0
    assert s.candidate is not None and s.candidate.id == release_id(drv.spec)
    assert not s.exposed
    assert s.routing is not None and s.routing.candidate == s.candidate
    assert set(drv.percents().values()) == {0}
    assert plan_queries(drv.spec, s, NS, NAME, now=at(60)) == []  # nothing to analyse yet
    d = drv.call(30)
    assert d.outcome is Outcome.HOLD and d.reason == "WaitingForRelease"
    assert set(drv.percents().values()) == {0}
    drv.ready.add(release_id(drv.spec))
    d = drv.call(30)
    assert d.outcome is Outcome.ADVANCE and d.reason == "ReleaseReady"
    assert drv.percents() == {"experts": 100, "beta": 0, "everyone": 0}
    assert d.status.step_start_time == at(drv.t)


def test_start_exposes_immediately_when_the_release_is_already_ready() -> None:
    drv = started()
    assert drv.decisions[-1].outcome is Outcome.START
    assert drv.percents() == {"experts": 100, "beta": 0, "everyone": 0}
    assert drv.status.step == "1/1 (100%)" and drv.status.stage == "experts"


def test_waiting_for_pods_longer_than_max_duration_rolls_back() -> None:
    first = make_spec()
    drv = Driver(first, ready={release_id(first)})
    drv.call()
    drv.apply(with_revision(first, "2"), ready=False)
    drv.call(0)
    d = drv.call(600)
    assert d.outcome is Outcome.HOLD
    d = drv.call(1)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "ReleaseNotReady"


def test_superseding_mid_rollout_restarts_at_first_stage() -> None:
    drv = started()
    drv.call(30)
    drv.call(30)  # -> beta 50%
    assert drv.status.stage == "beta"
    old = drv.status.candidate
    drv.apply(with_revision(drv.spec, "3"))
    d = drv.call(5)
    assert d.outcome is Outcome.SUPERSEDE and d.reason == "Superseded"
    assert old is not None and old.id in d.message
    s = d.status
    assert s.candidate is not None and s.candidate.id == release_id(drv.spec)
    assert (s.stage_index, s.step_index, s.stage) == (0, 0, "experts")
    assert drv.percents() == {"experts": 100, "beta": 0, "everyone": 0}
    assert s.gates == [] and s.consecutive_errors == 0
    assert s.history[-1].decision == "Supersede"


def test_reverting_the_spec_to_stable_abandons_the_candidate() -> None:
    drv = started()
    stable = drv.status.stable
    assert stable is not None
    drv.apply(with_revision(drv.spec, "1"))
    d = drv.call(5)
    assert d.outcome is Outcome.SUPERSEDE and d.reason == "RevertedToStable"
    assert d.status.phase is Phase.PROMOTED and d.status.candidate is None
    assert d.status.stable == stable
    assert set(drv.percents().values()) == {0}


def test_spec_change_that_keeps_the_release_continues_the_rollout() -> None:
    drv = started()
    drv.call(30)
    before = drv.status.candidate
    drv.apply(
        respec(drv.spec, release={**drv.spec.release.model_dump(by_alias=True), "replicas": 3})
    )
    d = drv.call(30)
    assert d.outcome is Outcome.ADVANCE and d.status.candidate == before
    assert d.status.observed_generation == drv.generation


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
    drv = started(stages=[{"name": "experts", "cohorts": ["experts"], "minDuration": "5m",
                           "maxDuration": "10m", "gates": [gate]}])

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
        namespace=NS,
        name=NAME,
        generation=2,
        observations={},
        ready_releases=frozenset(drv.ready),
    )
    assert d.status.gates[0].verdict is Verdict.ERROR
    assert "missing" in d.status.gates[0].message


# --- pause / resume -----------------------------------------------------------------


def test_spec_paused_holds_everything_and_ignores_metrics() -> None:
    drv = started()
    drv.call(30)
    routing = drv.status.routing
    drv.apply(respec(drv.spec, paused=True))
    d = drv.call(10, BAD)
    assert d.outcome is Outcome.PAUSE and d.reason == "PausedBySpec"
    assert d.status.phase is Phase.PAUSED and d.status.routing == routing
    assert cond(d.status, ConditionType.PAUSED) == ("True", "PausedBySpec")
    assert plan_queries(drv.spec, d.status, NS, NAME, now=at(60)) == []
    for _ in range(40):  # well past maxDuration: paused time does not count
        d = drv.call(30, BAD)
        assert d.outcome is Outcome.NOOP
    assert d.status.phase is Phase.PAUSED and d.status.routing == routing


def test_resume_shifts_timers_so_paused_time_does_not_count() -> None:
    drv = started()
    drv.call(30)  # step started at 0, analysed at 30
    drv.apply(respec(drv.spec, paused=True))
    drv.call(10)  # paused at 40
    drv.apply(respec(drv.spec, paused=False))
    d = drv.call(1000)  # resumed at 1040
    assert d.outcome is Outcome.RESUME and d.reason == "ResumedBySpec"
    assert d.status.phase is Phase.PROGRESSING and d.status.pause is None
    assert d.status.step_start_time == at(1000)  # 40 s of the step had passed
    assert d.requeue_after == 0.0  # an analysis is due
    d = drv.call(10)  # 50 s into the step: still soaking
    assert d.outcome is Outcome.HOLD and d.reason == "MinDuration"
    d = drv.call(30)  # 80 s into the step
    assert d.outcome is Outcome.ADVANCE


def test_new_release_while_paused_waits_at_the_first_stage_unexposed() -> None:
    first = make_spec()
    drv = Driver(first, ready={release_id(first)})
    drv.call()
    drv.apply(respec(with_revision(first, "2"), paused=True))
    d = drv.call(5)
    assert d.outcome is Outcome.START and d.status.phase is Phase.PAUSED
    assert not d.status.exposed and set(drv.percents().values()) == {0}
    drv.apply(respec(drv.spec, paused=False))
    assert drv.call(5).outcome is Outcome.RESUME
    d = drv.call(5)
    assert d.outcome is Outcome.ADVANCE and d.reason == "ReleaseReady"


def test_pause_without_rollout_only_sets_the_condition() -> None:
    first = make_spec(paused=True)
    d = Driver(first, ready={release_id(first)}).call()
    assert d.status.phase is Phase.PROMOTED
    assert cond(d.status, ConditionType.PAUSED) == ("True", "PausedBySpec")


# --- manual actions -----------------------------------------------------------------


def test_promote_skips_to_the_next_step_ignoring_gates() -> None:
    drv = started()
    d = drv.call(30, BAD, action=ManualAction("promote", "1"))
    assert d.outcome is Outcome.ADVANCE and d.reason == "ManualPromotion"
    assert d.status.stage == "beta" and d.status.last_handled_action == "promote/1"


def test_action_is_applied_once_per_id() -> None:
    drv = started()
    drv.call(1, action=ManualAction("promote", "a"))
    d = drv.call(1, action=ManualAction("promote", "a"))
    assert d.outcome is not Outcome.ADVANCE
    assert (d.status.stage, d.status.step_percent) == ("beta", 50)
    d = drv.call(1, action=ManualAction("promote", "b"))
    assert d.outcome is Outcome.ADVANCE and d.status.step_percent == 100


def test_promote_at_the_last_step_completes_the_promotion() -> None:
    drv = started()
    for i in range(4):
        drv.call(1, action=ManualAction("promote", str(i)))
    assert (drv.status.stage, drv.status.step_percent) == ("all", 50)
    d = drv.call(1, action=ManualAction("promote", "last"))
    assert d.outcome is Outcome.PROMOTE and d.status.phase is Phase.PROMOTED


def test_promote_full_completes_the_promotion_now() -> None:
    drv = started()
    candidate = drv.status.candidate
    d = drv.call(1, BAD, action=ManualAction("promote-full", "x"))
    assert d.outcome is Outcome.PROMOTE and d.reason == "ManualPromotion"
    assert d.status.stable == candidate and d.status.candidate is None


def test_abort_rolls_back() -> None:
    drv = started()
    d = drv.call(1, GOOD, action=ManualAction("abort", "x"))
    assert d.outcome is Outcome.ROLLBACK and d.reason == "Aborted"
    assert d.status.phase is Phase.ROLLED_BACK and set(drv.percents().values()) == {0}


def test_rolled_back_release_stays_rolled_back() -> None:
    drv = started()
    drv.call(1, action=ManualAction("abort", "x"))
    for _ in range(10):
        d = drv.call(60, GOOD)
        assert d.outcome is Outcome.NOOP and d.status.phase is Phase.ROLLED_BACK
    drv.apply(respec(drv.spec, analysis={"interval": "20s"}))  # not a new release
    assert drv.call(60).status.phase is Phase.ROLLED_BACK
    drv.apply(with_revision(drv.spec, "3"))  # a new release
    d = drv.call(60)
    assert d.outcome is Outcome.START and d.status.phase is Phase.PROGRESSING


def test_retry_restarts_a_rolled_back_candidate_at_the_first_stage() -> None:
    drv = started()
    drv.call(30, BAD)
    drv.call(30, BAD)
    assert drv.status.phase is Phase.ROLLED_BACK
    d = drv.call(5, action=ManualAction("retry", "1"))
    assert d.outcome is Outcome.RETRY
    s = d.status
    assert s.phase is Phase.PROGRESSING and (s.stage_index, s.step_index) == (0, 0)
    assert s.exposed and s.gates == [] and s.last_analysis_time is None
    assert drv.percents()["experts"] == 100


def test_retry_after_error_pause_restarts() -> None:
    drv = started()
    for _ in range(3):
        drv.call(30, broken())
    d = drv.call(1, action=ManualAction("retry", "1"))
    assert d.outcome is Outcome.RETRY and d.status.phase is Phase.PROGRESSING


def test_resume_action_lifts_an_error_pause_where_it_was() -> None:
    drv = started()
    drv.call(30)
    drv.call(30)  # beta 50%
    for _ in range(3):
        drv.call(30, broken())
    assert drv.status.phase is Phase.PAUSED
    d = drv.call(1, action=ManualAction("resume", "1"))
    assert d.outcome is Outcome.RESUME and d.status.stage == "beta"
    assert d.status.phase is Phase.PROGRESSING and d.status.consecutive_errors == 0


def test_cli_resume_sends_the_action_with_spec_paused_false() -> None:
    drv = started()
    drv.apply(respec(drv.spec, paused=True))
    drv.call(10)
    drv.apply(respec(drv.spec, paused=False))
    d = drv.call(10, action=ManualAction("resume", "1"))
    assert d.outcome is Outcome.RESUME and d.reason == "ResumedBySpec"
    d = drv.call(1, action=ManualAction("resume", "2"))  # nothing paused: quiet
    assert d.outcome is Outcome.NOOP and d.status.last_handled_action == "resume/2"


def test_resume_action_while_spec_paused_is_rejected() -> None:
    drv = started()
    for _ in range(3):
        drv.call(30, broken())
    drv.apply(respec(drv.spec, paused=True))
    d = drv.call(1, action=ManualAction("resume", "1"))
    assert d.outcome is Outcome.REJECT and "spec.paused is true" in d.message
    assert d.status.pause is not None and d.status.pause.reason is PauseReason.SPEC


@pytest.mark.parametrize(
    ("setup", "action", "why"),
    [
        ("progressing", "retry", "only a rolled-back"),
        ("promoted", "promote", "no rollout in progress"),
        ("promoted", "abort", "no rollout in progress"),
        ("rolledback", "promote-full", "no rollout in progress"),
        ("progressing", "bogus", "unknown action"),
        ("notready", "promote", "is not ready"),
    ],
)
def test_actions_that_do_not_apply_are_rejected_and_recorded(
    setup: str, action: str, why: str
) -> None:
    drv = started()
    if setup == "promoted":
        drv.call(1, action=ManualAction("promote-full", "0"))
    elif setup == "rolledback":
        drv.call(1, action=ManualAction("abort", "0"))
    elif setup == "notready":
        assert drv.status.candidate is not None
        drv.ready.discard(drv.status.candidate.id)
    before = drv.status.model_copy(deep=True)
    d = drv.call(1, action=ManualAction(action, "z"))
    assert d.outcome is Outcome.REJECT and why in d.message
    assert d.status.last_handled_action == f"{action}/z"
    assert d.status.phase == before.phase and d.status.stage == before.stage
    assert d.warning


# --- invalid specs, failures --------------------------------------------------------


def test_invalid_template_makes_phase_invalid_and_leaves_routing() -> None:
    drv = started()
    routing = drv.status.routing
    bad = respec(drv.spec, metrics=[{"name": "x", "query": 'sum(rate(y{a="{{ nope }}"}[5m]))'}])
    drv.apply(bad)
    d = drv.call(30)
    assert d.outcome is Outcome.INVALID and "unknown template variable" in d.message
    assert d.status.phase is Phase.INVALID and d.status.previous_phase is Phase.PROGRESSING
    assert d.status.routing == routing
    assert cond(d.status, ConditionType.READY) == ("False", "InvalidSpec")
    assert drv.call(30).outcome is Outcome.NOOP  # no repeated events
    drv.apply(respec(bad, metrics=[]))
    d = drv.call(30)
    assert d.outcome is Outcome.RESUME and d.reason == "SpecValid"
    assert d.status.phase is Phase.PROGRESSING and d.status.step_start_time == at(drv.t)


def test_mark_invalid_for_a_spec_that_does_not_parse() -> None:
    d = mark_invalid(LLMDeploymentStatus(), now=T0, generation=4, problems=["spec.x: bad"])
    assert d.outcome is Outcome.INVALID and d.status.phase is Phase.INVALID
    assert d.status.observed_generation == 4 and "spec.x: bad" in d.status.message
    assert cond(d.status, ConditionType.READY) == ("False", "InvalidSpec")


def test_mark_failed_routes_to_stable_and_retry_restarts() -> None:
    drv = started()
    d = mark_failed(
        drv.spec,
        drv.status,
        now=at(5),
        generation=2,
        reason="DeploymentRejected",
        message="pod template invalid",
        ready_releases=frozenset(drv.ready),
    )
    assert d.outcome is Outcome.FAIL and d.status.phase is Phase.FAILED
    assert d.status.routing is not None and d.status.routing.candidate is None
    assert cond(d.status, ConditionType.DEGRADED) == ("True", "DeploymentRejected")
    drv.status = d.status
    assert drv.call(5).outcome is Outcome.NOOP
    assert drv.call(5, action=ManualAction("retry", "1")).outcome is Outcome.RETRY


def _reject(drv: Driver, dt: float, action: ManualAction | None = None) -> Decision:
    """One reconcile where the API server rejects the spec's release (as the controller
    calls mark_failed instead of decide)."""
    drv.t += dt
    d = mark_failed(drv.spec, drv.status, now=at(drv.t), generation=drv.generation,
                    reason="ReleaseRejected", message="spec.template.spec.containers[0].image: "
                    "Required value", ready_releases=frozenset(drv.ready), action=action)
    drv.status = d.status
    return d


def test_a_rejected_release_on_a_promoted_deployment_fails_and_names_it() -> None:
    first = make_spec("1")
    drv = Driver(first, ready={release_id(first)})
    drv.call()
    assert drv.status.phase is Phase.PROMOTED
    bad = with_revision(first, "2")
    drv.apply(bad, ready=False)
    d = _reject(drv, 5)
    assert d.outcome is Outcome.FAIL and d.warning and d.notable
    s = d.status
    assert s.phase is Phase.FAILED
    assert s.candidate is not None and s.candidate.id == release_id(bad)
    assert s.release == release_id(bad)
    assert s.stable is not None and s.stable.id == release_id(first)
    assert f"release {release_id(bad)} was rejected by the API server" in s.message
    assert "containers[0].image: Required value" in s.message
    assert f"traffic stays on stable release {release_id(first)}" in s.message
    assert s.routing is not None and s.routing.candidate is None
    assert s.history[-1].decision == Outcome.FAIL.value
    assert s.history[-1].release == release_id(bad)
    assert cond(s, ConditionType.DEGRADED) == ("True", "ReleaseRejected")
    assert _reject(drv, 5).outcome is Outcome.NOOP  # one Event, not one per reconcile


def test_a_rejected_first_release_shows_failed_not_a_blank_phase() -> None:
    drv = Driver(make_spec("1"))
    d = _reject(drv, 0)
    s = d.status
    assert d.outcome is Outcome.FAIL
    assert s.phase is Phase.FAILED and s.stable is None
    assert s.candidate is not None and s.release == s.candidate.id
    assert cond(s, ConditionType.READY) == ("False", "NoRelease")


def test_a_rejected_release_mid_rollout_names_the_rejected_one_and_abandons_the_other() -> None:
    drv = started("1", "2")
    drv.call(30)
    running = drv.status.candidate
    assert running is not None and drv.status.exposed
    drv.apply(with_revision(drv.spec, "3"), ready=False)
    s = _reject(drv, 5).status
    assert s.phase is Phase.FAILED and s.candidate is not None
    assert s.candidate.id == release_id(drv.spec) != running.id
    assert f"candidate {running.id} abandoned" in s.message
    assert not s.exposed and s.gates == []
    assert s.routing is not None and s.routing.candidate is None


def test_retry_while_the_release_is_still_rejected_is_answered_not_dropped() -> None:
    drv = started("1", "2")
    drv.apply(with_revision(drv.spec, "3"), ready=False)
    _reject(drv, 5)
    d = _reject(drv, 5, action=ManualAction("retry", "a"))
    assert d.outcome is Outcome.REJECT and d.warning
    assert d.status.last_handled_action == "retry/a"
    assert "action retry: release" in d.message and "was rejected" in d.message
    assert d.status.phase is Phase.FAILED
    # Once the API server accepts it (the cause was outside the release), retry restarts.
    drv.ready.add(release_id(drv.spec))
    assert drv.call(5).outcome is Outcome.NOOP
    d = drv.call(5, action=ManualAction("retry", "b"))
    assert d.outcome is Outcome.RETRY and d.status.phase is Phase.PROGRESSING
    assert d.status.candidate is not None and d.status.candidate.id == release_id(drv.spec)


def test_a_new_release_after_a_rejected_one_starts_a_rollout() -> None:
    drv = started("1", "2")
    drv.apply(with_revision(drv.spec, "3"), ready=False)
    _reject(drv, 5)
    drv.apply(with_revision(drv.spec, "4"))
    d = drv.call(5)
    assert d.outcome is Outcome.START and d.status.phase is Phase.PROGRESSING
    assert d.status.candidate is not None and d.status.candidate.id == release_id(drv.spec)


def test_stable_objects_rejected_then_accepted_returns_to_promoted() -> None:
    first = make_spec("1")
    drv = Driver(first, ready={release_id(first)})
    drv.call()
    s = _reject(drv, 5).status
    assert s.phase is Phase.FAILED and s.candidate is None
    assert _reject(drv, 5).outcome is Outcome.NOOP
    d = drv.call(5)
    assert d.outcome is Outcome.RESUME and d.reason == "ReleaseAccepted"
    assert d.status.phase is Phase.PROMOTED


# --- stage list changes -------------------------------------------------------------


def test_renamed_current_stage_restarts_the_rollout() -> None:
    drv = started()
    drv.call(30)
    drv.call(30)  # beta
    stages = drv.spec.model_dump(by_alias=True, exclude_none=True)["stages"]
    stages[1]["name"] = "early"
    drv.apply(respec(drv.spec, stages=stages))
    d = drv.call(1)
    assert d.outcome is Outcome.START and d.reason == "StagesChanged"
    assert d.status.stage == "experts"


def test_reordered_stages_are_followed_by_name() -> None:
    drv = started()
    drv.call(30)
    drv.call(30)  # beta (index 1)
    stages = drv.spec.model_dump(by_alias=True, exclude_none=True)["stages"]
    stages[0], stages[1] = stages[1], stages[0]
    drv.apply(respec(drv.spec, stages=stages))
    d = drv.call(1)
    assert d.status.stage_index == 0 and d.status.stage == "beta"


def test_fewer_steps_clamp_the_step_index() -> None:
    drv = started()
    for _ in range(4):
        drv.call(30)
    assert (drv.status.stage, drv.status.step_index) == ("beta", 1)
    stages = drv.spec.model_dump(by_alias=True, exclude_none=True)["stages"]
    stages[1]["steps"] = [100]
    drv.apply(respec(drv.spec, stages=stages))
    d = drv.call(1)
    assert d.status.step_index == 0 and d.status.step_percent == 100


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
        namespace=NS,
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
            namespace=NS,
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
    drv = started(stages=[{"name": "experts", "cohorts": ["experts"], "minDuration": "5m",
                           "maxDuration": "50m", "gates": [FB_GATE]}])
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
    drv = started(stages=[{"name": "experts", "cohorts": ["experts"], "minDuration": "2m30s",
                           "maxDuration": "50m", "gates": [FB_GATE]}])
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
