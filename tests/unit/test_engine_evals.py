"""Eval suites in the pure engine: which runs a stage needs, waiting for them, and a
failed or timed-out run as a gate Error under the error policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine_support import BAD, GOOD, NAME, NS, Driver, ObsFn, at, make_spec, observe, started

from llm_rollout.api import ConditionType, LLMDeploymentSpec, ManualAction, Phase, release_id
from llm_rollout.api.evalrun import EvalPhase
from llm_rollout.engine import Decision, Outcome, decide
from llm_rollout.engine.evals import (
    TIMEOUT_GRACE_SECONDS,
    eval_run_name,
    required_eval_runs,
)
from llm_rollout.engine.types import EvalRunState

SUITE: dict[str, Any] = {
    "name": "golden",
    "dataset": {"configMapRef": {"name": "golden", "key": "cases.jsonl"}},
    "stages": ["experts"],
    "checks": [{"name": "short", "type": "maxLength", "max": 100}],
    "timeout": "10m",
}
EVAL_GATE = {
    "name": "golden",
    "kind": "Threshold",
    "metric": "eval-score",
    "suite": "golden",
    "min": 0.8,
}


def with_evals(drv: Driver, **suite: Any) -> None:
    """Give the driver's spec a suite at the experts stage (and keep the release)."""
    raw = drv.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["evals"] = [SUITE | suite]
    drv.spec = LLMDeploymentSpec.model_validate(raw)


def evals_started(**suite: Any) -> Driver:
    drv = started(evals=[SUITE | suite])
    return drv


def run_name(drv: Driver, suite: str = "golden", stage: str = "experts") -> str:
    assert drv.status.candidate is not None
    return eval_run_name(NAME, drv.status.candidate.id, stage, suite, drv.status.attempt)


def step(
    drv: Driver,
    dt: float = 0.0,
    fn: ObsFn = GOOD,
    evals: dict[str, EvalRunState] | None = None,
    action: ManualAction | None = None,
) -> Decision:
    drv.t += dt
    d = decide(
        drv.spec,
        drv.status,
        now=at(drv.t),
        name=NAME,
        generation=drv.generation,
        observations=observe(drv.spec, drv.status, fn, at(drv.t)),
        ready_releases=frozenset(drv.ready),
        action=action,
        evals=evals,
    )
    drv.status = d.status
    drv.decisions.append(d)
    return d


def state(
    drv: Driver,
    phase: EvalPhase,
    *,
    created: float = 0.0,
    completed: float | None = None,
    **kw: Any,
) -> dict[str, EvalRunState]:
    return {
        "golden": EvalRunState(
            run=run_name(drv),
            phase=phase,
            created=at(created),
            completed=at(completed) if completed is not None else None,
            **kw,
        )
    }


def condition(d: Decision) -> tuple[str, str]:
    c = d.status.condition(ConditionType.EVALS_SUCCEEDED)
    assert c is not None
    return c.status.value, c.reason


# --- which runs ------------------------------------------------------------------------


def test_runs_are_required_once_the_candidate_is_exposed_at_a_stage_with_suites() -> None:
    first = make_spec(evals=[SUITE])
    drv = Driver(first, ready={release_id(first)}, now=-100)
    drv.call()
    assert required_eval_runs(drv.spec, drv.status, NAME) == []  # promoted, no rollout
    drv.apply(make_spec("2", evals=[SUITE]), ready=False)
    step(drv)
    assert drv.status.phase is Phase.PROGRESSING and not drv.status.exposed
    assert required_eval_runs(drv.spec, drv.status, NAME) == [], "nothing answers yet"
    drv.ready.add(release_id(drv.spec))
    step(drv, 1)
    (request,) = required_eval_runs(drv.spec, drv.status, NAME)
    candidate = release_id(drv.spec)
    assert request.name == f"{NAME}-{candidate}-experts-golden-1" == run_name(drv)
    assert (request.stage, request.release, request.model, request.attempt) == (
        "experts",
        candidate,
        "llama",
        1,
    )
    assert request.suite.name == "golden" and request.stable_release is None


def test_compare_stable_names_the_stable_release() -> None:
    drv = evals_started(compareStable=True)
    (request,) = required_eval_runs(drv.spec, drv.status, NAME)
    assert drv.status.stable is not None and request.stable_release == drv.status.stable.id


def test_stages_without_suites_need_no_runs() -> None:
    drv = evals_started()
    step(drv, 30, evals=state(drv, EvalPhase.SUCCEEDED, completed=10))
    step(drv, 60, evals=state(drv, EvalPhase.SUCCEEDED, completed=10))
    assert drv.status.stage == "beta"
    assert required_eval_runs(drv.spec, drv.status, NAME) == []
    assert drv.status.evals == []


def test_each_attempt_gets_its_own_runs() -> None:
    drv = evals_started()
    first = run_name(drv)
    step(drv, 30, BAD, evals=state(drv, EvalPhase.SUCCEEDED, completed=5))
    d = step(drv, 30, BAD, evals=state(drv, EvalPhase.SUCCEEDED, completed=5))
    assert d.outcome is Outcome.ROLLBACK
    assert required_eval_runs(drv.spec, drv.status, NAME) == []
    step(drv, 1, action=ManualAction("retry", "1"))
    (request,) = required_eval_runs(drv.spec, drv.status, NAME)
    assert request.name != first and request.name.endswith("-golden-2")


def test_long_names_are_shortened_deterministically() -> None:
    long = eval_run_name("d" * 240, "abcdef0123", "experts", "golden", 1)
    assert len(long) == 253 and long == eval_run_name(
        "d" * 240, "abcdef0123", "experts", "golden", 1
    )
    assert long != eval_run_name("d" * 240, "abcdef0123", "experts", "golden", 2)


# --- waiting -----------------------------------------------------------------------------


def test_the_stage_holds_until_its_runs_finished_even_when_gates_pass() -> None:
    drv = evals_started()
    d = step(drv, 30)
    assert d.outcome is Outcome.HOLD and d.reason == "WaitingForEvals"
    assert "golden (pending)" in d.message
    assert [(e.suite, e.run, e.phase) for e in d.status.evals] == [
        ("golden", run_name(drv), EvalPhase.PENDING)
    ]
    assert condition(d) == ("Unknown", "EvalsRunning")
    d = step(drv, 60, evals=state(drv, EvalPhase.RUNNING, created=1))
    assert d.outcome is Outcome.HOLD and d.reason == "WaitingForEvals"
    assert "golden (running)" in d.message
    d = step(drv, 30, evals=state(drv, EvalPhase.SUCCEEDED, created=1, completed=100))
    assert d.outcome is Outcome.ADVANCE and d.status.stage == "beta"
    assert condition(d) == ("True", "EvalsSucceeded")


def test_a_state_of_another_run_counts_as_no_run() -> None:
    drv = evals_started()
    stale = {"golden": EvalRunState(run="bot-old-experts-golden-1", phase=EvalPhase.SUCCEEDED)}
    d = step(drv, 90, evals=stale)
    assert d.reason == "WaitingForEvals"


def test_gates_still_fail_while_runs_are_pending() -> None:
    drv = evals_started()
    step(drv, 30, BAD)
    d = step(drv, 30, BAD)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "GateFailed"


def test_a_suite_only_stage_advances_once_its_runs_succeeded() -> None:
    drv = started(
        stages=[
            {"name": "experts", "cohorts": ["experts"], "minDuration": "1m"},
            {"name": "all", "cohorts": ["everyone", "beta"]},
        ],
        evals=[SUITE],
    )
    d = step(drv, 61)
    assert d.outcome is Outcome.HOLD and d.reason == "WaitingForEvals"
    assert d.requeue_after is not None and d.requeue_after <= 30
    d = step(drv, 30, evals=state(drv, EvalPhase.SUCCEEDED, completed=70))
    assert d.outcome is Outcome.ADVANCE and d.status.stage == "all"


def test_empty_eval_series_are_not_missing_right_after_the_runs_finished() -> None:
    from llm_rollout.engine import ObservationError, ObservationErrorKind

    empty: ObsFn = lambda q: ObservationError(ObservationErrorKind.EMPTY)  # noqa: E731
    drv = evals_started()
    raw = drv.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["stages"][0]["gates"] = [EVAL_GATE]
    drv.spec = LLMDeploymentSpec.model_validate(raw)
    done = state(drv, EvalPhase.SUCCEEDED, completed=100)
    d = step(drv, 101, empty, evals=done)  # soaked, finished a second ago: not scraped yet
    assert d.reason == "Inconclusive" and d.status.consecutive_errors == 0
    d = step(drv, 60, empty, evals=done)  # a minute on: the series is missing
    assert d.reason == "MetricsUnavailable" and "no series after minDuration" in d.message


# --- failures ----------------------------------------------------------------------------


def test_a_failed_run_is_an_error_and_pauses_at_error_limit() -> None:
    drv = evals_started()
    failed = state(
        drv, EvalPhase.FAILED, reason="InvalidDataset", message="dataset line 3: not valid JSON"
    )
    d = step(drv, 30, evals=failed)
    assert d.outcome is Outcome.HOLD and d.reason == "EvalFailed"
    assert "eval suite golden" in d.message and "dataset line 3: not valid JSON" in d.message
    assert d.status.consecutive_errors == 1
    assert condition(d) == ("False", "InvalidDataset")
    metrics = d.status.condition(ConditionType.METRICS_AVAILABLE)
    assert metrics is not None and metrics.status.value == "True", "the metrics are fine"
    step(drv, 30, evals=failed)
    d = step(drv, 30, evals=failed)
    assert d.outcome is Outcome.PAUSE and d.reason == "EvalFailed" and d.warning
    assert d.status.phase is Phase.PAUSED and "dataset line 3" in d.message


def test_a_failed_run_rolls_back_when_the_policy_says_so() -> None:
    drv = started(
        evals=[SUITE],
        analysis={"interval": "30s", "errorLimit": 2, "onMetricsUnavailable": "Rollback"},
    )
    failed = state(drv, EvalPhase.FAILED, reason="JudgeInvalid", message="judge x: 8 of 8")
    step(drv, 30, evals=failed)
    d = step(drv, 30, evals=failed)
    assert d.outcome is Outcome.ROLLBACK and d.reason == "EvalFailed"


def test_a_run_past_its_timeout_is_an_error() -> None:
    drv = evals_started(timeout="2m")
    running = state(drv, EvalPhase.RUNNING, created=0)
    d = step(drv, 120 + TIMEOUT_GRACE_SECONDS, evals=running)
    assert d.reason == "WaitingForEvals"
    d = step(drv, 30, evals=running)
    assert d.reason == "EvalFailed" and "did not finish within its timeout of 2m" in d.message
    assert condition(d) == ("False", "TimedOut")
    assert d.status.evals[0].reason == "TimedOut"


def test_a_run_that_cannot_be_created_is_reported_with_its_reason() -> None:
    drv = evals_started()
    missing = {
        "golden": EvalRunState(
            run=run_name(drv),
            phase=EvalPhase.FAILED,
            reason="SecretMissing",
            message="judge a: API-key Secret team/key not found",
        )
    }
    d = step(drv, 30, evals=missing)
    c = d.status.condition(ConditionType.EVALS_SUCCEEDED)
    assert c is not None and (c.status.value, c.reason) == ("False", "SecretMissing")
    assert "Secret team/key not found" in c.message
    d = step(drv, 30, evals=state(drv, EvalPhase.PENDING, created=60))
    assert d.reason == "WaitingForEvals" and d.status.consecutive_errors == 0


def test_recovery_after_a_failed_run_needs_a_retry_and_the_new_attempt_runs_again() -> None:
    drv = evals_started()
    failed = state(drv, EvalPhase.FAILED, reason="InvalidDataset", message="line 1")
    for _ in range(3):
        step(drv, 30, evals=failed)
    assert drv.status.phase is Phase.PAUSED
    d = step(drv, 1, action=ManualAction("retry", "r1"))
    assert d.outcome is Outcome.RETRY and drv.status.attempt == 2 and drv.status.evals == []
    d = step(drv, 30, evals=failed)  # the old attempt's run is not this attempt's
    assert d.reason == "WaitingForEvals"


# --- the condition -----------------------------------------------------------------------


def test_no_condition_without_suites_and_it_goes_when_they_go() -> None:
    drv = started()
    d = step(drv, 30)
    assert d.status.condition(ConditionType.EVALS_SUCCEEDED) is None
    with_evals(drv)
    d = step(drv, 30)
    assert d.status.condition(ConditionType.EVALS_SUCCEEDED) is not None
    raw = drv.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["evals"] = []
    drv.spec = LLMDeploymentSpec.model_validate(raw)
    d = step(drv, 30)
    assert d.status.condition(ConditionType.EVALS_SUCCEEDED) is None


def test_the_condition_says_no_run_yet_before_a_stage_with_suites() -> None:
    first = make_spec(evals=[SUITE])
    drv = Driver(first, ready={release_id(first)}, now=-100)
    d = drv.call()
    assert condition(d) == ("Unknown", "NotEvaluated")
    drv.apply(make_spec("2", evals=[SUITE]))
    step(drv, 1)
    step(drv, 30, evals=state(drv, EvalPhase.SUCCEEDED, completed=5))
    d = step(drv, 30, evals=state(drv, EvalPhase.SUCCEEDED, completed=5))
    assert condition(d) == ("True", "EvalsSucceeded")
    drv.apply(make_spec("3", evals=[SUITE]), ready=False)  # the next rollout
    d = step(drv, 30)
    assert d.outcome is Outcome.SUPERSEDE and not d.status.exposed
    assert condition(d) == ("Unknown", "NotEvaluated"), "not the last rollout's verdict"


def test_statuses_with_evals_conform_to_the_crd() -> None:
    from schema_support import conforms

    from llm_rollout.gen import crd as crdgen

    schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    drv = evals_started()
    step(drv, 30, evals=state(drv, EvalPhase.RUNNING))
    step(drv, 30, evals=state(drv, EvalPhase.FAILED, reason="X", message="y"))
    for d in drv.decisions:
        assert conforms(schema["properties"]["status"], d.status.to_patch(), ".status") == []


def test_timeouts_count_from_creation_not_from_the_stage() -> None:
    drv = evals_started(timeout="1m")
    late = state(drv, EvalPhase.PENDING, created=300)
    d = step(drv, 330, evals=late)
    assert d.reason == "WaitingForEvals"
    assert late["golden"].created is not None
    assert at(drv.t) - late["golden"].created < timedelta(minutes=1)


def test_llm_rollout_status_shows_the_stage_runs() -> None:
    from llm_rollout.cli.statusview import render_status

    drv = evals_started()
    step(
        drv,
        30,
        evals=state(
            drv, EvalPhase.FAILED, reason="InvalidDataset", message="dataset line 3: not valid JSON"
        ),
    )
    text = render_status(
        {"metadata": {"namespace": NS, "name": NAME}, "status": drv.status.to_patch()}
    )
    assert "EVALS (stage experts; kubectl get llmevalruns)" in text
    assert f"golden  {run_name(drv)}  Failed  dataset line 3: not valid JSON" in text
