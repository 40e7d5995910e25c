"""The sample-ratio check: a split the routing does not explain holds the rollout."""

from __future__ import annotations

from engine_support import FB_GATE, GOOD, Driver, ObsFn, respec, started

from llm_rollout.api import ConditionType, Phase, Verdict
from llm_rollout.engine import MetricQuery, Observation, Outcome


def split(candidate: float, stable: float, rest: ObsFn = GOOD) -> ObsFn:
    def fn(q: MetricQuery) -> Observation:
        if q.gate != "@sample-ratio":
            return rest(q)
        return candidate if q.role.value == "candidate" else stable

    return fn


STAGES = [
    {
        "name": "experts",
        "cohorts": ["experts"],
        "minDuration": "1m",
        "maxDuration": "10m",
        "gates": [FB_GATE],
    },
    {
        "name": "beta",
        "cohorts": ["beta"],
        "steps": [50, 100],
        "minDuration": "2m",
        "maxDuration": "10m",
        "gates": [FB_GATE],
    },
]


def at_beta_half() -> Driver:
    """At beta 50%, past the check's first two intervals (it counts from then on)."""
    drv = started(stages=STAGES)
    drv.call(30)
    drv.call(30)  # experts passed: beta, 50%
    assert (drv.status.stage, drv.status.step_percent) == ("beta", 50)
    for _ in range(2):
        d = drv.call(30, split(500, 0))  # before the routing settles: not counted
        assert d.status.sample_ratio is not None
        assert d.status.sample_ratio.verdict is Verdict.INCONCLUSIVE
        assert "two analysis intervals into the step" in d.status.sample_ratio.message
    return drv


def test_a_split_as_promised_passes_and_the_rollout_moves_on() -> None:
    drv = at_beta_half()
    d = drv.call(30, split(260, 240))
    assert d.status.sample_ratio is not None
    assert d.status.sample_ratio.verdict is Verdict.PASS
    assert d.status.sample_ratio.expected == 0.5 and d.status.sample_ratio.candidate == 260
    d = drv.call(30, split(510, 490))  # minDuration 2m over
    assert d.outcome is Outcome.ADVANCE and d.status.step_percent == 100
    assert d.status.sample_ratio is None  # a new step: a new check


def test_a_mismatch_holds_names_the_split_and_pauses_at_the_error_limit() -> None:
    drv = at_beta_half()
    d = drv.call(30, split(100, 400))
    assert d.outcome is Outcome.HOLD and d.reason == "SampleRatioMismatch"
    assert "candidate got 20.0% of 500 users" in d.message and "promises 50%" in d.message
    assert d.status.sample_ratio is not None and d.status.sample_ratio.verdict is Verdict.ERROR
    drv.call(30, split(100, 400))
    d = drv.call(30, split(100, 400))
    assert d.outcome is Outcome.PAUSE and d.status.phase is Phase.PAUSED
    assert "sample ratio mismatch" in d.message and d.warning
    paused = d.status.condition(ConditionType.PAUSED)
    assert paused is not None and paused.reason == "SampleRatioMismatch"


def test_no_check_at_full_steps_without_data_or_when_turned_off() -> None:
    drv = started(stages=STAGES)  # experts at 100%: "all of them", nothing to test
    d = drv.call(30, split(0, 500))
    assert d.status.sample_ratio is None
    drv = at_beta_half()
    d = drv.call(30, split(0, 0))
    assert d.status.sample_ratio is not None
    assert d.status.sample_ratio.verdict is Verdict.INCONCLUSIVE and d.outcome is Outcome.HOLD
    assert d.reason != "SampleRatioMismatch"
    drv.spec = respec(
        drv.spec, analysis={"interval": "30s", "failureLimit": 2, "sampleRatioCheck": False}
    )
    d = drv.call(30, split(100, 400))
    assert d.status.sample_ratio is None and d.reason != "SampleRatioMismatch"
