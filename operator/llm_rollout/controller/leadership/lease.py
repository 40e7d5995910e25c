"""The pure part of leader election: what a replica does with the Lease it read,
when a leader must step down, and the Lease bodies it writes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger("llm_rollout.leadership")


DEFAULT_LEASE_NAME = "llm-rollout-operator"


DEFAULT_LEASE_DURATION = 15.0


DEFAULT_RENEW_DEADLINE = 10.0


DEFAULT_RETRY_PERIOD = 2.0


# client-go's rule: the renew deadline must leave room for a jittered retry.
JITTER_FACTOR = 1.2


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says about its holder (`holder == ""`: released or never held)."""

    holder: str
    duration: float
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


class Move(StrEnum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # released, or expired: take it over
    RENEW = "renew"  # ours: extend it
    WAIT = "wait"  # someone else holds a live Lease


def next_move(record: LeaseRecord | None, *, identity: str, observed_at: float, now: float) -> Move:
    """What to do with the Lease as last read.

    `observed_at` is when (on our monotonic clock) we first saw this exact record;
    a record unchanged for its own `duration` since then is expired.
    """
    if record is None:
        return Move.CREATE
    if record.holder == identity:
        return Move.RENEW
    if not record.holder or now >= observed_at + record.duration:
        return Move.ACQUIRE
    return Move.WAIT


def must_step_down(*, last_renewed: float, now: float, renew_deadline: float) -> bool:
    """A leader whose last successful renewal was sent at `last_renewed` stops acting
    once `renew_deadline` has passed without another."""
    return now - last_renewed >= renew_deadline


def expires_in(record: LeaseRecord, *, observed_at: float, now: float) -> float:
    """Seconds until a record someone else holds counts as expired (0: it does)."""
    return max(0.0, observed_at + record.duration - now)


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claim(
    record: LeaseRecord | None, *, identity: str, lease_duration: float, now: datetime
) -> dict[str, Any]:
    """The Lease spec that makes (or keeps) `identity` the holder."""
    stamp = micro_time(now)
    if record is not None and record.holder == identity:
        return {
            "holderIdentity": identity,
            "leaseDurationSeconds": _seconds(lease_duration),
            "acquireTime": record.acquire_time or stamp,
            "renewTime": stamp,
            "leaseTransitions": record.transitions,
        }
    transitions = 0 if record is None else record.transitions + (1 if record.holder else 0)
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": _seconds(lease_duration),
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def release_spec(record: LeaseRecord, *, now: datetime) -> dict[str, Any]:
    """The Lease spec of a leader stepping down gracefully: no holder, so the next
    candidate takes it at once."""
    stamp = micro_time(now)
    return {
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": record.transitions,
    }


def _seconds(value: float) -> int:
    return max(1, round(value))


def check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """Raise ValueError unless retry period < renew deadline < lease duration."""
    if min(lease_duration, renew_deadline, retry_period) <= 0:
        raise ValueError("leader election durations must be positive")
    if lease_duration != round(lease_duration) or lease_duration < 1:
        raise ValueError(
            "--leader-elect-lease-duration must be whole seconds (the Lease "
            "stores leaseDurationSeconds as an integer)"
        )
    if renew_deadline >= lease_duration:
        raise ValueError(
            f"--leader-elect-renew-deadline ({renew_deadline:g}s) must be shorter "
            f"than --leader-elect-lease-duration ({lease_duration:g}s): a leader "
            "must stop acting before others may take over"
        )
    if renew_deadline <= JITTER_FACTOR * retry_period:
        raise ValueError(
            f"--leader-elect-renew-deadline ({renew_deadline:g}s) must be longer "
            f"than {JITTER_FACTOR} x --leader-elect-retry-period "
            f"({retry_period:g}s)"
        )
