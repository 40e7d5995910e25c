"""The router's count of assignment units, which the sample-ratio check reads."""

from __future__ import annotations

from llm_rollout.api.routing_table import CohortRoute, ReleaseInfo, RoutingTable
from llm_rollout.router.assignments import AssignmentTracker

STABLE, CANDIDATE = ReleaseInfo(id="s1"), ReleaseInfo(id="c1")


def table(percent: int, candidate: ReleaseInfo | None = CANDIDATE) -> RoutingTable:
    return RoutingTable(
        stable=STABLE,
        candidate=candidate,
        routes=[CohortRoute(cohort="everyone", candidate_percent=percent)],
    )


def test_a_user_is_one_unit_until_the_routing_of_its_cohort_changes() -> None:
    t = AssignmentTracker()
    ten = table(10)
    assert t.first_placement("ns", "d", "everyone", ten, "alice")
    assert not t.first_placement("ns", "d", "everyone", ten, "alice")  # a heavy user: once
    assert t.first_placement("ns", "d", "everyone", ten, "bob")
    assert t.first_placement("ns", "d", "beta", ten, "alice")  # another cohort's count
    twenty_five = table(25)  # the next step: everyone is placed anew
    assert t.first_placement("ns", "d", "everyone", twenty_five, "alice")
    assert not t.first_placement("ns", "d", "everyone", twenty_five, "alice")
    other = table(25, ReleaseInfo(id="c2"))  # a new candidate: anew as well
    assert t.first_placement("ns", "d", "everyone", other, "alice")


def test_requests_without_a_user_id_are_each_a_unit() -> None:
    t = AssignmentTracker()
    assert all(t.first_placement("ns", "d", "everyone", table(10), None) for _ in range(3))


def test_past_capacity_new_users_go_uncounted_and_gone_deployments_are_forgotten() -> None:
    t = AssignmentTracker(capacity=2)
    ten = table(10)
    assert [t.first_placement("ns", "d", "everyone", ten, u) for u in "abc"] == [True, True, False]
    t.keep({("ns", "other")})
    assert t.first_placement("ns", "d", "everyone", ten, "c")
