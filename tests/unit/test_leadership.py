"""Leader election decisions (pure) and the elector's protocol against an in-memory
Lease store with the API server's optimistic concurrency (resourceVersion, 409)."""

from __future__ import annotations

import argparse
import asyncio
import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llm_rollout.controller import leadership
from llm_rollout.controller.leadership import (
    ElectionConfig,
    LeaderElector,
    LeaseRecord,
    LostLeadership,
    Move,
    check_timing,
    claim,
    micro_time,
    must_step_down,
    next_move,
    release_spec,
    run_elected,
)
from llm_rollout.kube.errors import Conflict

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def rec(
    holder: str,
    duration: float = 15,
    transitions: int = 0,
    renew: str = "2026-11-28T11:59:58.000000Z",
) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration=duration,
        acquire_time="2026-11-28T11:00:00.000000Z",
        renew_time=renew,
        transitions=transitions,
    )


# -- pure decisions -----------------------------------------------------------------


def test_no_lease_is_created() -> None:
    assert next_move(None, identity="a", observed_at=0, now=100) is Move.CREATE


def test_own_lease_is_renewed_even_if_it_looks_expired() -> None:
    assert next_move(rec("a"), identity="a", observed_at=0, now=1000) is Move.RENEW


def test_released_lease_is_taken_at_once() -> None:
    assert next_move(rec(""), identity="b", observed_at=99.9, now=100) is Move.ACQUIRE


def test_someone_elses_live_lease_is_left_alone_until_it_stays_unchanged_for_its_duration() -> None:
    held = rec("a", duration=15)
    assert next_move(held, identity="b", observed_at=100, now=100) is Move.WAIT
    assert next_move(held, identity="b", observed_at=100, now=114.99) is Move.WAIT
    assert next_move(held, identity="b", observed_at=100, now=115) is Move.ACQUIRE


def test_expiry_uses_our_clock_not_the_holders_timestamps() -> None:
    # renewTime says "a year ago" (the holder's clock is off): we only trust when we saw it.
    skewed = rec("a", renew="2025-11-28T12:00:00.000000Z")
    assert next_move(skewed, identity="b", observed_at=50, now=51) is Move.WAIT


def test_leader_steps_down_when_no_renewal_succeeded_within_the_deadline() -> None:
    assert not must_step_down(last_renewed=100, now=109.9, renew_deadline=10)
    assert must_step_down(last_renewed=100, now=110, renew_deadline=10)


def test_renewal_keeps_acquire_time_and_transitions() -> None:
    spec = claim(rec("a", transitions=3), identity="a", lease_duration=15, now=NOW)
    assert spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-28T11:00:00.000000Z",
        "renewTime": "2026-11-28T12:00:00.000000Z",
        "leaseTransitions": 3,
    }


def test_takeover_counts_a_transition_and_creation_starts_at_zero() -> None:
    taken = claim(rec("a", transitions=3), identity="b", lease_duration=15, now=NOW)
    assert taken["holderIdentity"] == "b" and taken["leaseTransitions"] == 4
    assert taken["acquireTime"] == taken["renewTime"] == "2026-11-28T12:00:00.000000Z"
    assert claim(None, identity="b", lease_duration=15, now=NOW)["leaseTransitions"] == 0
    # taking a released Lease is no transition away from a holder
    assert (
        claim(rec("", transitions=3), identity="b", lease_duration=15, now=NOW)["leaseTransitions"]
        == 3
    )


def test_release_clears_the_holder() -> None:
    spec = release_spec(rec("a", transitions=2), now=NOW)
    assert spec["holderIdentity"] is None and spec["leaseTransitions"] == 2
    assert spec["leaseDurationSeconds"] == 1


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert micro_time(NOW) == "2026-11-28T12:00:00.000000Z"
    assert micro_time(NOW.replace(microsecond=1500)) == "2026-11-28T12:00:00.001500Z"


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "message"),
    [
        (15, 15, 2, "must be shorter than --leader-elect-lease-duration"),
        (15, 2, 2, "must be longer than 1.2 x --leader-elect-retry-period"),
        (15, 10, 0, "must be positive"),
        (2.5, 2, 0.5, "whole seconds"),
    ],
)
def test_inconsistent_timing_is_refused(
    lease: float, renew: float, retry: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_timing(lease, renew, retry)
    check_timing(15, 10, 2)  # the defaults are consistent


def test_config_defaults_come_from_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace", action="append", default=[])
    leadership.add_arguments(parser)
    monkeypatch.setenv("POD_NAMESPACE", "llm-system")
    monkeypatch.setenv("POD_NAME", "op-7d9c-xk2")
    cfg = leadership.config_from_args(parser.parse_args(["--leader-elect"]))
    assert cfg.namespace == "llm-system" and cfg.identity.startswith("op-7d9c-xk2_")
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15, 10, 2)
    monkeypatch.delenv("POD_NAMESPACE")
    monkeypatch.setattr(leadership.config, "_SA_NAMESPACE", Path("/nonexistent"))
    cfg = leadership.config_from_args(
        parser.parse_args(["--namespace", "team-a", "--leader-elect-identity", "x"])
    )
    assert cfg.namespace == "team-a" and cfg.identity == "x"


# -- the elector against an in-memory Lease store -------------------------------------


class LeaseStore:
    """Keeps Leases like the API server does: resourceVersion per write, 409 on a stale
    update or a duplicate create. `down` makes every call fail (a partition)."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("API server unreachable")

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        found = self.leases.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def _store(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"] = {
            **body["metadata"],
            "namespace": namespace,
            "resourceVersion": str(self.version),
        }
        self.leases[(namespace, body["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if (namespace, body["metadata"]["name"]) in self.leases:
            raise Conflict(409, "Conflict", "already exists")
        return self._store(namespace, body)

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        current = self.leases[(namespace, name)]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        return self._store(namespace, body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(store: LeaseStore, clock: Clock, identity: str) -> LeaderElector:
    cfg = ElectionConfig(
        namespace="ns", identity=identity, lease_duration=15, renew_deadline=10, retry_period=2
    )
    return LeaderElector(store, cfg, clock=clock, wall=lambda: NOW)


def test_one_candidate_wins_the_other_waits_until_the_lease_expires() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and b.holder == "a"
    clock.now += 14  # a died just after acquiring: nothing changes any more
    assert not b.try_acquire_or_renew()
    clock.now += 1  # 15 s after b first saw that record
    assert b.try_acquire_or_renew()
    lease = store.leases[("ns", "llm-rollout-operator")]
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1


def test_a_renewing_leader_is_never_displaced() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    for _ in range(30):  # a minute of renewals every 2 s
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert store.leases[("ns", "llm-rollout-operator")]["spec"]["holderIdentity"] == "a"


def test_of_two_candidates_taking_an_expired_lease_only_one_wins() -> None:
    store, clock = LeaseStore(), Clock()
    dead, b, c = (elector(store, clock, i) for i in ("dead", "b", "c"))
    assert dead.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.now += 15
    # both read the expired record, then both write: the second write is stale
    original_get = store.get
    snapshot = original_get("ns", "llm-rollout-operator")
    store.get = lambda namespace, name: copy.deepcopy(snapshot)  # type: ignore[method-assign]
    results = [b.try_acquire_or_renew(), c.try_acquire_or_renew()]
    store.get = original_get  # type: ignore[method-assign]
    assert results == [True, False]
    assert store.leases[("ns", "llm-rollout-operator")]["spec"]["holderIdentity"] == "b"


def test_released_lease_is_taken_without_waiting() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert b.try_acquire_or_renew()


def test_leader_cut_off_from_the_api_server_steps_down_before_anyone_takes_over() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    store.down = True
    step_down_at = None
    for _ in range(20):
        clock.now += 1
        assert not a.try_acquire_or_renew()
        assert a.last_renewed is not None
        if step_down_at is None and must_step_down(
            last_renewed=a.last_renewed, now=clock.now, renew_deadline=10
        ):
            step_down_at = clock.now
    store.down = False
    b_took_over = None
    clock.now = 1000.0
    for _ in range(40):
        clock.now += 0.5
        if b.try_acquire_or_renew():
            b_took_over = clock.now
            break
    assert step_down_at == 1010.0
    assert b_took_over is not None and b_took_over >= 1015.0 > step_down_at


def fast_leader(store: LeaseStore, renew_deadline: float) -> LeaderElector:
    """A real-time elector holding the Lease, renewing every 0.1 s."""
    cfg = ElectionConfig(
        namespace="ns",
        identity="a",
        lease_duration=2,
        renew_deadline=renew_deadline,
        retry_period=0.1,
    )
    leader = LeaderElector(store, cfg)
    assert leader.try_acquire_or_renew()
    return leader


async def test_keep_raises_when_renewals_fail_past_the_deadline() -> None:
    store = LeaseStore()
    a = fast_leader(store, renew_deadline=0.5)
    store.down = True
    with pytest.raises(LostLeadership, match="could not renew"):
        await asyncio.wait_for(a.keep(), 5)


async def test_keep_raises_at_once_when_another_holder_shows_up() -> None:
    store = LeaseStore()
    a = fast_leader(store, renew_deadline=1.5)
    lease = store.leases[("ns", "llm-rollout-operator")]
    lease["spec"]["holderIdentity"] = "intruder"
    lease["metadata"]["resourceVersion"] = "999"
    with pytest.raises(LostLeadership, match="held by intruder"):
        await asyncio.wait_for(a.keep(), 1)


async def test_run_elected_starts_the_operator_only_when_leading_and_releases_after() -> None:
    store = LeaseStore()
    fast = {"namespace": "ns", "lease_duration": 2, "renew_deadline": 1.0, "retry_period": 0.1}
    a = LeaderElector(store, ElectionConfig(identity="a", **fast))  # type: ignore[arg-type]
    b = LeaderElector(store, ElectionConfig(identity="b", **fast))  # type: ignore[arg-type]
    events: list[str] = []
    a_stop = asyncio.Event()

    async def operator_a() -> None:
        events.append("a runs")
        await a_stop.wait()

    async def operator_b() -> None:
        events.append("b runs")

    lost: list[str] = []
    task_a = asyncio.create_task(run_elected(a, operator_a, on_lost=lost.append))
    await asyncio.sleep(0.3)
    task_b = asyncio.create_task(run_elected(b, operator_b, on_lost=lost.append))
    await asyncio.sleep(0.5)
    assert events == ["a runs"], "b stands by while a leads"
    a_stop.set()  # a's operator stops (as on SIGTERM): a releases, b takes over at once
    assert await asyncio.wait_for(task_a, 2) == 0
    assert await asyncio.wait_for(task_b, 2) == 0
    assert events == ["a runs", "b runs"] and lost == []
