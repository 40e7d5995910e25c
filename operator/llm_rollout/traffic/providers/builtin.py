"""The built-in router: it reads the routing table from status; nothing to apply."""

from __future__ import annotations

from typing import Any

from llm_rollout.api.routing_table import RoutingTable
from llm_rollout.api.spec import RoutingSpec
from llm_rollout.traffic.providers.base import MeshTarget, OwnedKind


class BuiltinProvider:
    """The router reads the table from status; nothing to render."""

    name = "builtin"
    kinds: tuple[OwnedKind, ...] = ()

    @classmethod
    def from_spec(cls, spec: RoutingSpec) -> BuiltinProvider:
        return cls()

    def render(self, target: MeshTarget, table: RoutingTable) -> list[dict[str, Any]]:
        return []
