"""The routing provider registry: one provider per spec name, each owning what it renders."""

from __future__ import annotations

import pytest

from llm_rollout.api import LLMDeploymentSpec, RoutingProvider
from llm_rollout.api.cohorts import Cohort, CohortMatch
from llm_rollout.api.routing_table import CohortRoute, ReleaseInfo, RoutingTable
from llm_rollout.api.spec import RoutingSpec
from llm_rollout.kube.builders import Owner
from llm_rollout.kube.client import resource_path
from llm_rollout.traffic.providers import (
    PROVIDERS,
    BuiltinProvider,
    GatewayAPIProvider,
    IstioProvider,
    MeshTarget,
    kinds_of_others,
    provider_for,
)

TARGET = MeshTarget(
    owner=Owner("team", "bot", "uid-1"),
    port=8080,
    cohorts=[Cohort(name="experts", match=CohortMatch(users=["alice"])), Cohort(name="everyone")],
    default_cohort="everyone",
)
TABLE = RoutingTable(
    stable=ReleaseInfo(id="aaaaaaaaaa"),
    candidate=ReleaseInfo(id="bbbbbbbbbb"),
    routes=[CohortRoute(cohort="experts", candidate_percent=100)],
)


def test_every_spec_provider_name_is_registered() -> None:
    assert set(PROVIDERS) == set(RoutingProvider)


@pytest.mark.parametrize(
    ("routing", "kind"),
    [
        ({"provider": "builtin"}, BuiltinProvider),
        (
            {
                "provider": "gateway-api",
                "gatewayApi": {"parentRefs": [{"name": "gw"}], "hostnames": ["bot.example"]},
            },
            GatewayAPIProvider,
        ),
        (
            {"provider": "istio", "istio": {"hosts": ["bot.example"], "gateways": ["gw"]}},
            IstioProvider,
        ),
    ],
)
def test_provider_for_builds_the_provider_from_its_options(
    routing: dict[str, object], kind: type
) -> None:
    provider = provider_for(RoutingSpec.model_validate(routing))
    assert isinstance(provider, kind)
    assert provider.name == routing["provider"]


@pytest.mark.parametrize("name", list(RoutingProvider))
def test_a_provider_owns_every_kind_it_renders_and_the_client_knows_it(
    name: RoutingProvider,
) -> None:
    provider = provider_for(RoutingSpec(provider=name))
    rendered = provider.render(TARGET, TABLE)
    owned = {(k.api_version, k.kind) for k in provider.kinds}
    assert {(m["apiVersion"], m["kind"]) for m in rendered} <= owned
    for kind in provider.kinds:
        assert resource_path(kind.api_version, kind.kind, "team", "bot").endswith(
            f"/namespaces/team/{kind.plural}/bot"
        )
    for manifest in rendered:
        assert manifest["metadata"]["name"] == "bot"  # what a switch deletes by name


def test_kinds_of_others_are_what_a_switch_deletes() -> None:
    assert [k.kind for k in kinds_of_others(RoutingProvider.BUILTIN)] == [
        "HTTPRoute",
        "VirtualService",
    ]
    assert [k.kind for k in kinds_of_others(RoutingProvider.ISTIO)] == ["HTTPRoute"]
    assert [k.kind for k in kinds_of_others(RoutingProvider.GATEWAY_API)] == ["VirtualService"]


def test_the_engine_records_which_provider_publishes_the_routing() -> None:
    from engine_support import Driver, make_spec

    drv = Driver(make_spec("1"))
    assert drv.call().status.routing_provider is RoutingProvider.BUILTIN
    raw = drv.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["routing"] = {"provider": "istio"}
    drv.apply(LLMDeploymentSpec.model_validate(raw))
    assert drv.call(1).status.routing_provider is RoutingProvider.ISTIO
