"""A long-running router keeps metric series only for releases it serves (plus a grace)."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from llm_rollout.router.app import Router, RouterSettings
from llm_rollout.router.config import served_from_object
from llm_rollout.router.state import RouterState
from llm_rollout.router.tokens import TokenSigner
from llm_rollout.traffic.backends import StaticBackends


def deployment(stable: str, candidate: str | None) -> dict[str, Any]:
    routing: dict[str, Any] = {"stable": {"id": stable}, "routes": []}
    if candidate:
        routing["candidate"] = {"id": candidate}
    return {
        "metadata": {"namespace": "ns", "name": "bot"},
        "spec": {"cohorts": [{"name": "everyone"}], "defaultCohort": "everyone"},
        "status": {"routing": routing},
    }


def test_series_of_a_release_that_left_go_after_the_grace_period() -> None:
    now = [1000.0]
    state = RouterState()
    router = Router(
        state,
        StaticBackends(),
        TokenSigner([b"k" * 32], 60),
        RouterSettings(retired_series_grace=600),
        clock=lambda: now[0],
    )

    def series(release: str) -> bool:
        return f'release="{release}"' in generate_latest(router.metrics.registry).decode()

    state.update([served_from_object(deployment("old", "new"))])
    assert series("old") and series("new")

    now[0] += 10
    state.update([served_from_object(deployment("new", None))])  # promoted: "old" left
    assert series("old"), "kept during the grace period: its last counts must be scraped"

    now[0] += 599
    state.update([served_from_object(deployment("new", None))])
    assert series("old")

    now[0] += 2
    state.update([served_from_object(deployment("new", None))])
    assert not series("old") and series("new")


def test_a_release_that_comes_back_keeps_its_series() -> None:
    now = [0.0]
    state = RouterState()
    router = Router(
        state,
        StaticBackends(),
        TokenSigner([b"k" * 32], 60),
        RouterSettings(retired_series_grace=100),
        clock=lambda: now[0],
    )
    state.update([served_from_object(deployment("a", "b"))])
    now[0] += 50
    state.update([served_from_object(deployment("a", None))])  # b rolled back
    now[0] += 40
    state.update([served_from_object(deployment("a", "b"))])  # retried
    now[0] += 100
    state.update([served_from_object(deployment("a", "b"))])
    text = generate_latest(router.metrics.registry).decode()
    assert 'release="b"' in text
