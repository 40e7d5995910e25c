"""The state machine: releases, pauses, manual actions, invalid specs, failures,
stage changes (engine/machine.py, one rule at a time, explicit datetimes)."""

from __future__ import annotations

import pytest
from engine_support import (
    BAD,
    GOOD,
    NAME,
    NS,
    T0,
    Driver,
    at,
    broken,
    cond,
    make_spec,
    respec,
    started,
    with_revision,
)

from llm_rollout.api import (
    ConditionType,
    LLMDeploymentStatus,
    ManualAction,
    PauseReason,
    Phase,
    release_id,
)
from llm_rollout.engine import (
    Decision,
    Outcome,
    mark_failed,
    mark_invalid,
    plan_queries,
)

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
    d = mark_failed(
        drv.spec,
        drv.status,
        now=at(drv.t),
        generation=drv.generation,
        reason="ReleaseRejected",
        message="spec.template.spec.containers[0].image: Required value",
        ready_releases=frozenset(drv.ready),
        action=action,
    )
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
