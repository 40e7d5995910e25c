"""Routing providers: how the routing table reaches users (builtin, gateway-api, istio).

Pure renderers, one module per provider (as Flagger's routers): the operator applies what they
return with server-side apply. The built-in router needs no objects: it reads the
table from status.

What a mesh cannot do that the built-in router does: weights split *requests*,
not users, so a user is not kept on one release within a percentage step unless
an upstream sets a sticky header; and a mesh mints no feedback tokens (the
response still names its release in `x-llm-release`, set per backend here).
"""

from __future__ import annotations

from collections.abc import Callable

from llm_rollout.api.spec import RoutingProvider as ProviderName
from llm_rollout.api.spec import RoutingSpec
from llm_rollout.traffic.providers.base import MeshTarget, OwnedKind, RoutingProvider
from llm_rollout.traffic.providers.builtin import BuiltinProvider
from llm_rollout.traffic.providers.gateway_api import GatewayAPIProvider
from llm_rollout.traffic.providers.istio import IstioProvider

# The registry: adding a provider is a module like the ones above plus one line here
# (and its name in api.spec.RoutingProvider). docs/extending.md walks through it.
PROVIDERS: dict[ProviderName, Callable[[RoutingSpec], RoutingProvider]] = {
    ProviderName.BUILTIN: BuiltinProvider.from_spec,
    ProviderName.GATEWAY_API: GatewayAPIProvider.from_spec,
    ProviderName.ISTIO: IstioProvider.from_spec,
}


def provider_for(spec: RoutingSpec) -> RoutingProvider:
    return PROVIDERS[spec.provider](spec)


def kinds_of_others(name: ProviderName) -> list[OwnedKind]:
    """What every other provider may have left behind (to delete on a switch)."""
    default = RoutingSpec()
    return [
        kind
        for other, make in PROVIDERS.items()
        if other is not name
        for kind in make(default).kinds
    ]


__all__ = [
    "PROVIDERS",
    "BuiltinProvider",
    "GatewayAPIProvider",
    "IstioProvider",
    "MeshTarget",
    "OwnedKind",
    "RoutingProvider",
    "kinds_of_others",
    "provider_for",
]
