"""Mesh routing providers: the routing table rendered as Gateway API or Istio objects.

Pure renderers, one per mesh (as Flagger's routers): the operator applies what they
return with server-side apply. The built-in router needs no objects: it reads the
table from status.

What a mesh cannot do that the built-in router does: weights split *requests*,
not users, so a user is not kept on one release within a percentage step unless
an upstream sets a sticky header; and a mesh mints no feedback tokens (the
response still names its release in `x-llm-release`, set per backend here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llm_rollout.api.cohorts import Cohort
from llm_rollout.kube.builders import Owner, owner_reference, release_object_name
from llm_rollout.routing.table import ReleaseInfo, RoutingTable


@dataclass(frozen=True)
class MeshTarget:
    """What every renderer needs to know about one LLMDeployment."""

    owner: Owner
    port: int
    cohorts: Sequence[Cohort]
    default_cohort: str
    user_id_header: str = "x-user-id"
    labels: dict[str, str] = field(default_factory=dict)


class RoutingProvider(Protocol):
    name: str

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        """The objects that publish `table` (empty for the built-in router)."""
        ...


def _split(table: RoutingTable, cohort: str) -> list[tuple[ReleaseInfo, int]]:
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


def _header_matches(cohort: Cohort, user_id_header: str) -> list[tuple[str, str]]:
    pairs = [(name.lower(), value) for name, values in cohort.match.headers.items()
             for value in values]
    pairs += [(user_id_header.lower(), user) for user in cohort.match.users]
    return pairs


def _metadata(target: MeshTarget) -> dict[str, Any]:
    return {"name": target.owner.name, "namespace": target.owner.namespace,
            "labels": dict(target.labels), "ownerReferences": [owner_reference(target.owner)]}


class BuiltinProvider:
    """The router reads the table from status; nothing to render."""

    name = "builtin"

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        return []


@dataclass
class GatewayAPIProvider:
    """An HTTPRoute: one rule per cohort with header matches, weighted backendRefs.

    Rule order is cohort order; Gateway API gives equal-specificity ties to the
    first rule, so the first matching cohort wins as in the built-in router.
    """

    parent_refs: list[dict[str, Any]]
    hostnames: list[str] = field(default_factory=list)
    name: str = "gateway-api"

    def _backends(self, target: MeshTarget, table: RoutingTable,
                  cohort: str) -> list[dict[str, Any]]:
        return [{
            "name": release_object_name(target.owner.name, release.id), "port": target.port,
            "weight": weight,
            "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                "set": [{"name": "x-llm-release", "value": release.id},
                        {"name": "x-llm-cohort", "value": cohort}]}}],
        } for release, weight in _split(table, cohort)]

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for cohort in target.cohorts:
            pairs = _header_matches(cohort, target.user_id_header)
            if not pairs or cohort.name == target.default_cohort:
                continue
            rules.append({
                "matches": [{"headers": [{"type": "Exact", "name": n, "value": v}]}
                            for n, v in pairs],
                "backendRefs": self._backends(target, table, cohort.name),
            })
        rules.append({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                      "backendRefs": self._backends(target, table, target.default_cohort)})
        spec: dict[str, Any] = {"parentRefs": self.parent_refs, "rules": rules}
        if self.hostnames:
            spec["hostnames"] = self.hostnames
        return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                 "metadata": _metadata(target), "spec": spec}]


@dataclass
class IstioProvider:
    """A VirtualService: one http route per cohort with header matches, weighted
    destinations that stamp `x-llm-release` / `x-llm-cohort` on responses."""

    hosts: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    name: str = "istio"

    def _route(self, target: MeshTarget, table: RoutingTable, cohort: str) -> list[dict[str, Any]]:
        ns = target.owner.namespace
        return [{
            "destination": {
                "host": f"{release_object_name(target.owner.name, release.id)}.{ns}"
                        ".svc.cluster.local",
                "port": {"number": target.port}},
            "weight": weight,
            "headers": {"response": {"set": {"x-llm-release": release.id,
                                             "x-llm-cohort": cohort}}},
        } for release, weight in _split(table, cohort)]

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        http: list[dict[str, Any]] = []
        for cohort in target.cohorts:
            pairs = _header_matches(cohort, target.user_id_header)
            if not pairs or cohort.name == target.default_cohort:
                continue
            http.append({"name": cohort.name,
                         "match": [{"headers": {n: {"exact": v}}} for n, v in pairs],
                         "route": self._route(target, table, cohort.name)})
        http.append({"name": target.default_cohort,
                     "route": self._route(target, table, target.default_cohort)})
        spec: dict[str, Any] = {"hosts": self.hosts or [target.owner.name], "http": http}
        if self.gateways:
            spec["gateways"] = self.gateways
        return [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                 "metadata": _metadata(target), "spec": spec}]
