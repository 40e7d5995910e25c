"""status.history compaction: the rollout's start and milestones outlive its Holds."""

from __future__ import annotations

from engine_support import UNSURE, at, started

from llm_rollout.api import HISTORY_LIMIT, HistoryEntry
from llm_rollout.engine.history import record


def entry(decision: str, n: int, reason: str = "") -> HistoryEntry:
    return HistoryEntry(
        time=at(n),
        decision=decision,
        release="r",
        reason=reason or decision,
        message=f"{decision} {n}",
    )


def test_under_the_bound_nothing_is_dropped() -> None:
    history: list[HistoryEntry] = []
    for n in range(5):
        history = record(history, entry("Hold", n), limit=5)
    assert [e.message for e in history] == [f"Hold {n}" for n in range(5)]


def test_holds_go_first_and_the_start_stays() -> None:
    history = [entry("Promote", 0), entry("Start", 1)]
    for n in range(2, 41):
        history = record(history, entry("Hold" if n % 3 else "Advance", n), limit=10)
    decisions = [e.decision for e in history]
    assert len(history) == 10
    # 13 Advances and 26 Holds after the start: the Holds went first (the latest is
    # kept), then the Promote from before the rollout, then the oldest Advances.
    assert decisions[0] == "Start"
    assert decisions[1:-1] == ["Advance"] * 8 and decisions[-1] == "Hold"
    assert [e.message for e in history if e.decision == "Advance"][-1] == "Advance 39"
    assert history[-1].message == "Hold 40"


def test_then_what_came_before_the_current_rollout() -> None:
    history = [entry("Promote", 0), entry("Rollback", 1), entry("Start", 2)]
    for n in range(3, 12):
        history = record(history, entry("Advance", n), limit=8)
    assert history[0].decision == "Start"
    assert [e.message for e in history[1:]] == [f"Advance {n}" for n in range(5, 12)]


def test_the_start_is_the_last_to_go() -> None:
    history = [entry("Start", 0)]
    for n in range(1, 20):
        history = record(history, entry("Advance", n), limit=4)
    assert [e.message for e in history] == ["Start 0", "Advance 17", "Advance 18", "Advance 19"]


def test_a_superseding_release_starts_a_rollout_a_revert_does_not() -> None:
    history = [entry("Start", 0), entry("Supersede", 1, reason="Superseded")]
    history = record(history, entry("Advance", 2), limit=2)
    assert [e.decision for e in history] == ["Supersede", "Advance"]
    history = [entry("Start", 0), entry("Supersede", 1, reason="RevertedToStable")]
    history = record(history, entry("Advance", 2), limit=2)
    assert [e.decision for e in history] == ["Start", "Advance"]


def test_a_long_rollout_keeps_its_start_on_the_real_engine() -> None:
    # Seven stages of three steps, every step held once before it passes: far more
    # notable decisions than the bound.
    stages = [
        {
            "name": f"s{i}",
            "cohorts": ["everyone"],
            "steps": [10, 50, 100],
            "minDuration": "30s",
            "maxDuration": "1h",
            "gates": [
                {"name": "g", "kind": "Threshold", "metric": "feedback-positive-rate", "min": 0.6}
            ],
        }
        for i in range(7)
    ]
    drv = started(stages=stages)
    first = drv.status.history[-1]
    assert first.decision == "Start"
    for _ in range(7 * 3):
        drv.call(1, UNSURE)  # a Hold
        drv.call(30)  # passes: advance
    history = drv.status.history
    assert len(history) <= HISTORY_LIMIT
    assert first in history
    assert history[-1].decision == "Promote"
