"""Gateway API: an HTTPRoute per LLMDeployment."""

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

HTTPROUTE = OwnedKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
register_plural(HTTPROUTE.kind, HTTPROUTE.plural)


@dataclass
class GatewayAPIProvider:
    """An HTTPRoute: one rule per cohort with header matches, weighted backendRefs.

    Rule order is cohort order; Gateway API gives equal-specificity ties to the
    first rule, so the first matching cohort wins as in the built-in router.
    """

    parent_refs: list[dict[str, Any]]
    hostnames: list[str] = field(default_factory=list)
    name: str = "gateway-api"
    kinds: tuple[OwnedKind, ...] = (HTTPROUTE,)

    @classmethod
    def from_spec(cls, spec: RoutingSpec) -> GatewayAPIProvider:
        options = spec.gateway_api
        return cls(
            parent_refs=options.parent_refs if options else [],
            hostnames=list(options.hostnames) if options else [],
        )

    def _backends(
        self, target: MeshTarget, table: RoutingTable, cohort: str
    ) -> list[dict[str, Any]]:
        return [
            {
                "name": release_object_name(target.owner.name, release.id),
                "port": target.port,
                "weight": weight,
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {
                            "set": [
                                {"name": "x-llm-release", "value": release.id},
                                {"name": "x-llm-cohort", "value": cohort},
                            ]
                        },
                    }
                ],
            }
            for release, weight in split(table, cohort)
        ]

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for cohort in target.cohorts:
            pairs = header_matches(cohort, target.user_id_header)
            if not pairs or cohort.name == target.default_cohort:
                continue
            rules.append(
                {
                    "matches": [
                        {"headers": [{"type": "Exact", "name": n, "value": v}]} for n, v in pairs
                    ],
                    "backendRefs": self._backends(target, table, cohort.name),
                }
            )
        rules.append(
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": self._backends(target, table, target.default_cohort),
            }
        )
        spec: dict[str, Any] = {"parentRefs": self.parent_refs, "rules": rules}
        if self.hostnames:
            spec["hostnames"] = self.hostnames
        return [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": metadata(target),
                "spec": spec,
            }
        ]
