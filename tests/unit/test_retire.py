from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from llm_rollout.controller.retire import RETIRED_AT, RetireStep, plan_retirement
from llm_rollout.kube.builders import LABEL_RELEASE

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def dep(release: str, *, retired: datetime | None = None, replicas: int = 2) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"bot-{release}", "labels": {LABEL_RELEASE: release}}
    if retired is not None:
        meta["annotations"] = {RETIRED_AT: retired.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {"metadata": meta, "spec": {"replicas": replicas}}


def plan(*deps: dict[str, Any], live: set[str]) -> list[tuple[RetireStep, str]]:
    actions = plan_retirement(list(deps), live, now=NOW, scale_down_delay=300, retention=3600)
    return [(a.step, a.release) for a in actions]


def test_live_releases_are_left_alone() -> None:
    assert plan(dep("a"), dep("b"), live={"a", "b"}) == []


def test_a_release_that_stops_being_live_is_marked_first() -> None:
    assert plan(dep("a"), dep("old"), live={"a"}) == [(RetireStep.MARK, "old")]


def test_scaled_down_after_the_delay_and_deleted_after_the_retention() -> None:
    assert plan(dep("old", retired=NOW - timedelta(seconds=100)), live=set()) == []
    assert plan(dep("old", retired=NOW - timedelta(seconds=400)), live=set()) == [
        (RetireStep.SCALE_DOWN, "old")
    ]
    assert plan(dep("old", retired=NOW - timedelta(seconds=400), replicas=0), live=set()) == []
    assert plan(dep("old", retired=NOW - timedelta(hours=2), replicas=0), live=set()) == [
        (RetireStep.DELETE, "old")
    ]


def test_a_retired_release_that_is_live_again_is_unmarked() -> None:
    # e.g. `retry` of a rolled-back candidate, or the spec reverted to it
    assert plan(dep("old", retired=NOW - timedelta(seconds=400)), live={"old"}) == [
        (RetireStep.UNMARK, "old")
    ]


def test_a_garbled_stamp_is_replaced() -> None:
    d = dep("old")
    d["metadata"]["annotations"] = {RETIRED_AT: "yesterday"}
    assert plan(d, live=set()) == [(RetireStep.MARK, "old")]
