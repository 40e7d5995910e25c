"""What every routing provider shares: the target it renders for, its protocol, helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llm_rollout.api.cohorts import DEFAULT_USER_ID_HEADER, Cohort
from llm_rollout.api.routing_table import ReleaseInfo, RoutingTable
from llm_rollout.kube.builders import Owner, owner_reference


@dataclass(frozen=True)
class MeshTarget:
    """What every renderer needs to know about one LLMDeployment."""

    owner: Owner
    port: int
    cohorts: Sequence[Cohort]
    default_cohort: str
    user_id_header: str = DEFAULT_USER_ID_HEADER
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnedKind:
    """A kind of object a provider creates, one per LLMDeployment, named after it."""

    api_version: str
    kind: str
    plural: str


class RoutingProvider(Protocol):
    """How the routing table reaches users. One module per provider, registered in
    traffic/providers/__init__.py; the reconciler applies what `render` returns and
    deletes the objects of every other provider's `kinds` when the spec switches."""

    name: str
    kinds: tuple[OwnedKind, ...]

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        """The objects that publish `table` (empty for the built-in router)."""
        ...


def split(table: RoutingTable, cohort: str) -> list[tuple[ReleaseInfo, int]]:
    """(release, weight) pairs for one cohort; weights add up to 100."""
    percent = table.candidate_percent(cohort)
    if table.stable is None and table.candidate is not None:
        return [(table.candidate, 100)]
    if table.stable is None:
        return []
    if table.candidate is None or percent == 0:
        return [(table.stable, 100)]
    if percent == 100:
        return [(table.candidate, 100)]
    return [(table.stable, 100 - percent), (table.candidate, percent)]


def header_matches(cohort: Cohort, user_id_header: str) -> list[tuple[str, str]]:
    pairs = [
        (name.lower(), value) for name, values in cohort.match.headers.items() for value in values
    ]
    pairs += [(user_id_header.lower(), user) for user in cohort.match.users]
    return pairs


def metadata(target: MeshTarget) -> dict[str, Any]:
    return {
        "name": target.owner.name,
        "namespace": target.owner.namespace,
        "labels": dict(target.labels),
        "ownerReferences": [owner_reference(target.owner)],
    }
