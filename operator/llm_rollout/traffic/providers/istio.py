"""Istio: a VirtualService per LLMDeployment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_rollout.api.routing_table import RoutingTable
from llm_rollout.api.spec import RoutingSpec
from llm_rollout.kube.builders import release_object_name
from llm_rollout.kube.client import register_plural
from llm_rollout.traffic.providers.base import (
    MeshTarget,
    OwnedKind,
    header_matches,
    metadata,
    split,
)

VIRTUAL_SERVICE = OwnedKind("networking.istio.io/v1", "VirtualService", "virtualservices")
register_plural(VIRTUAL_SERVICE.kind, VIRTUAL_SERVICE.plural)


@dataclass
class IstioProvider:
    """A VirtualService: one http route per cohort with header matches, weighted
    destinations that stamp `x-llm-release` / `x-llm-cohort` on responses."""

    hosts: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    name: str = "istio"
    kinds: tuple[OwnedKind, ...] = (VIRTUAL_SERVICE,)

    @classmethod
    def from_spec(cls, spec: RoutingSpec) -> IstioProvider:
        istio = spec.istio
        return cls(
            hosts=list(istio.hosts) if istio else [], gateways=list(istio.gateways) if istio else []
        )

    def _route(self, target: MeshTarget, table: RoutingTable, cohort: str) -> list[dict[str, Any]]:
        ns = target.owner.namespace
        return [
            {
                "destination": {
                    "host": f"{release_object_name(target.owner.name, release.id)}.{ns}"
                    ".svc.cluster.local",
                    "port": {"number": target.port},
                },
                "weight": weight,
                "headers": {
                    "response": {"set": {"x-llm-release": release.id, "x-llm-cohort": cohort}}
                },
            }
            for release, weight in split(table, cohort)
        ]

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        http: list[dict[str, Any]] = []
        for cohort in target.cohorts:
            pairs = header_matches(cohort, target.user_id_header)
            if not pairs or cohort.name == target.default_cohort:
                continue
            http.append(
                {
                    "name": cohort.name,
                    "match": [{"headers": {n: {"exact": v}}} for n, v in pairs],
                    "route": self._route(target, table, cohort.name),
                }
            )
        http.append(
            {
                "name": target.default_cohort,
                "route": self._route(target, table, target.default_cohort),
            }
        )
        spec: dict[str, Any] = {"hosts": self.hosts or [target.owner.name], "http": http}
        if self.gateways:
            spec["gateways"] = self.gateways
        return [
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": metadata(target),
                "spec": spec,
            }
        ]
