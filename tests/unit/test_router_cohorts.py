"""Cohort resolution and sticky buckets (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from llm_rollout.api.routing_table import bucket_of
from llm_rollout.router.cohorts import place_request, resolve_cohort
from llm_rollout.router.config import ServedDeployment, served_from_object


def served(routes: dict[str, int] | None = None, **spec: Any) -> ServedDeployment:
    return served_from_object(
        {
            "metadata": {"namespace": "ns", "name": "app"},
            "spec": {
                "cohorts": [
                    {
                        "name": "experts",
                        "match": {
                            "headers": {"X-Group": ["expert", "staff"]},
                            "users": ["alice", "bob"],
                        },
                    },
                    {"name": "beta", "match": {"headers": {"x-beta": ["1"], "x-group": ["beta"]}}},
                    {"name": "silent"},  # no matchers: only reachable explicitly
                ],
                "defaultCohort": "everyone",
                **spec,
            },
            "status": {
                "routing": {
                    "stable": {"id": "s"},
                    "candidate": {"id": "c"},
                    "routes": [
                        {"cohort": k, "candidatePercent": v} for k, v in (routes or {}).items()
                    ],
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("headers", "user", "trust", "expected"),
    [
        ({}, None, False, "everyone"),
        ({"x-group": "expert"}, None, False, "experts"),
        ({"X-GROUP": "staff"}, None, False, "experts"),  # header names case-insensitive
        ({"x-group": "Expert"}, None, False, "everyone"),  # values are exact
        ({}, "alice", False, "experts"),
        ({}, "Alice", False, "everyone"),
        ({"x-beta": "1"}, None, False, "beta"),
        ({"x-group": "beta"}, None, False, "beta"),
        ({"x-beta": "1"}, "bob", False, "experts"),  # first matching cohort wins
        ({"x-llm-cohort": "beta"}, None, False, "everyone"),  # not trusted by default
        ({"x-llm-cohort": "beta"}, "alice", True, "beta"),  # trusted: explicit wins
        ({"x-llm-cohort": "silent"}, None, True, "silent"),
        ({"x-llm-cohort": "everyone"}, "alice", True, "everyone"),
        ({"x-llm-cohort": "made-up"}, "alice", True, "experts"),  # undefined: ignored
    ],
)
def test_resolve_cohort(
    headers: dict[str, str], user: str | None, trust: bool, expected: str
) -> None:
    assert (
        resolve_cohort(served(), CIMultiDict(headers), user, trust_cohort_header=trust) == expected
    )


def test_any_of_repeated_header_values_matches() -> None:
    headers = CIMultiDict([("x-group", "other"), ("x-group", "beta")])
    assert resolve_cohort(served(), headers, None) == "beta"


def test_default_cohort_and_user_header_defaults() -> None:
    s = served_from_object({"metadata": {"name": "app"}})
    assert (s.namespace, s.default_cohort, s.user_id_header) == ("default", "everyone", "x-user-id")
    assert resolve_cohort(s, CIMultiDict(), "u") == "everyone"


def test_place_request_uses_user_header_and_is_sticky() -> None:
    s = served({"everyone": 50}, userIdHeader="X-Account")
    p = place_request(s, CIMultiDict({"x-account": "u42"}), request_id="r1")
    assert p.sticky and p.bucket == bucket_of("ns", "app", "u42") and p.cohort == "everyone"
    again = place_request(s, CIMultiDict({"x-account": "u42"}), request_id="r2")
    assert again.release == p.release
    anon = place_request(s, CIMultiDict({"x-user-id": "u42"}), request_id="r1")
    assert not anon.sticky  # x-user-id is not this deployment's user header


def release_id(s: ServedDeployment, headers: dict[str, str], request_id: str = "r") -> str:
    release = place_request(s, CIMultiDict(headers), request_id=request_id).release
    assert release is not None
    return release.id


def test_unsticky_requests_spread_by_request_id() -> None:
    s = served({"everyone": 50})
    assert {release_id(s, {}, f"r{i}") for i in range(200)} == {"s", "c"}


def test_bucket_is_stable_and_per_deployment() -> None:
    assert bucket_of("ns", "app", "u1") == bucket_of("ns", "app", "u1")
    moved = sum(
        bucket_of("ns", "app", f"u{i}") != bucket_of("ns", "other", f"u{i}") for i in range(1000)
    )
    assert moved > 900  # independent across deployments


@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50, 75, 90])
def test_candidate_share_matches_step(percent: int) -> None:
    s = served({"everyone": percent})
    users = [f"user-{i}" for i in range(10_000)]
    hits = sum(release_id(s, {"x-user-id": u}) == "c" for u in users)
    assert abs(hits / len(users) - percent / 100) <= 0.03


def test_raising_the_step_never_moves_a_user_back() -> None:
    users = [f"user-{i}" for i in range(2000)]
    previous: dict[str, str] = {}
    for percent in (0, 5, 20, 50, 100):
        s = served({"everyone": percent})
        now = {u: release_id(s, {"x-user-id": u}) for u in users}
        assert all(now[u] == "c" for u, r in previous.items() if r == "c")
        previous = now
    assert set(previous.values()) == {"c"}


def test_no_release_when_routing_is_empty() -> None:
    s = served_from_object({"metadata": {"name": "app"}})
    assert place_request(s, CIMultiDict(), request_id="r").release is None
