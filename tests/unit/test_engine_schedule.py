"""AnalysisOnSchedule: an overloaded operator says on each rollout that it is behind,
from how late each analysis started against its interval (pure: time is an argument)."""

from __future__ import annotations

from engine_support import UNSURE, cond, started

from llm_rollout.api import ConditionType, ManualAction, Phase
from llm_rollout.engine import Outcome

KIND = ConditionType.ANALYSIS_ON_SCHEDULE


def test_on_time_late_and_on_time_again() -> None:
    d = started()  # experts exposed at t=0, analyses every 30 s, minDuration 1m
    assert d.status.condition(KIND) is None  # no analysis yet
    d.call(dt=30, fn=UNSURE)  # due at 30 s, started at 30 s
    assert cond(d.status, KIND) == ("True", "OnSchedule")
    d.call(dt=30 + 25, fn=UNSURE)  # 25 s late: within the bound
    assert cond(d.status, KIND) == ("True", "OnSchedule")
    late = d.call(dt=30 + 45, fn=UNSURE)  # 45 s late
    assert cond(d.status, KIND) == ("False", "OperatorBehind")
    assert late.outcome is not Outcome.PAUSE and d.status.phase is Phase.PROGRESSING
    condition = d.status.condition(KIND)
    assert condition is not None and "verdicts stay right" in condition.message
    # Being behind is not a metrics problem: MetricsAvailable stays True.
    assert cond(d.status, ConditionType.METRICS_AVAILABLE)[0] == "True"
    d.call(dt=30, fn=UNSURE)
    assert cond(d.status, KIND) == ("True", "OnSchedule")


def test_calls_between_analyses_keep_the_last_word_and_a_finished_rollout_drops_it() -> None:
    d = started()
    d.call(dt=30 + 60, fn=UNSURE)  # a minute late
    assert cond(d.status, KIND) == ("False", "OperatorBehind")
    before = d.status.condition(KIND)
    d.call(dt=5, fn=UNSURE)  # not due: no analysis, nothing judged
    assert d.status.condition(KIND) == before
    d.call(action=ManualAction(name="abort", id="a1"))
    assert d.status.phase is Phase.ROLLED_BACK
    assert d.status.condition(KIND) is None
