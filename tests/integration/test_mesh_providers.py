"""Gateway API and Istio renderings are accepted by the real API server with the
upstream CRDs installed, and say what the routing table says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.conftest import REPO_ROOT, Cluster
from tests.integration.support import ControlledMetrics, OperatorProcess, Rollouts, wait_for
from tests.integration.test_operator_rollout import obj, rid, spec

from llm_rollout.api.cohorts import Cohort, CohortMatch
from llm_rollout.api.routing_table import CohortRoute, ReleaseInfo, RoutingTable
from llm_rollout.kube.builders import Owner
from llm_rollout.testbed.kubelet import KubeletStandIn
from llm_rollout.traffic.providers import GatewayAPIProvider, IstioProvider, MeshTarget


@pytest.fixture(scope="module")
def upstream_crds(cluster: Cluster) -> Path:
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack/upstream-crds.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    crd_dir = Path(out)
    for name in ("gateway.networking.k8s.io_httproutes.yaml", "istio-crds.yaml"):
        cluster.kubectl("apply", "--server-side", "-f", str(crd_dir / name))
    cluster.kubectl(
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "60s",
        "crd/httproutes.gateway.networking.k8s.io",
        "crd/virtualservices.networking.istio.io",
    )
    return crd_dir


def _target(namespace: str) -> MeshTarget:
    cohorts = [
        Cohort(
            name="experts", match=CohortMatch(headers={"X-User-Group": ["expert"]}, users=["alice"])
        ),
        Cohort(name="beta", match=CohortMatch(headers={"x-user-group": ["beta"]})),
        Cohort(name="everyone"),
    ]
    # The uid is made up: no LLMDeployment owns these test objects.
    return MeshTarget(
        owner=Owner(namespace, "bot", "00000000-0000-0000-0000-000000000001"),
        port=8080,
        cohorts=cohorts,
        default_cohort="everyone",
    )


TABLE = RoutingTable(
    stable=ReleaseInfo(id="aaaaaaaaaa"),
    candidate=ReleaseInfo(id="bbbbbbbbbb"),
    routes=[
        CohortRoute(cohort="experts", candidate_percent=100),
        CohortRoute(cohort="beta", candidate_percent=25),
    ],
)


def _create(cluster: Cluster, manifest: dict[str, object]) -> dict[str, object]:
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
    meta = manifest["metadata"]
    assert isinstance(meta, dict)
    got = cluster.kubectl(
        "get",
        str(manifest["kind"]).lower(),
        str(meta["name"]),
        "-n",
        str(meta["namespace"]),
        "-o",
        "json",
    ).stdout
    return dict(json.loads(got))


def test_httproute_is_accepted_and_splits_by_cohort(
    cluster: Cluster, upstream_crds: Path, namespace: str
) -> None:
    [route] = GatewayAPIProvider(parent_refs=[{"name": "gw"}]).render(_target(namespace), TABLE)
    stored = _create(cluster, route)
    rules = stored["spec"]["rules"]  # type: ignore[index]
    experts, beta, default = rules
    assert [m["headers"][0]["value"] for m in experts["matches"]] == ["expert", "alice"]
    assert [(b["name"], b["weight"]) for b in experts["backendRefs"]] == [("bot-bbbbbbbbbb", 100)]
    assert [(b["name"], b["weight"]) for b in beta["backendRefs"]] == [
        ("bot-aaaaaaaaaa", 75),
        ("bot-bbbbbbbbbb", 25),
    ]
    assert [(b["name"], b["weight"]) for b in default["backendRefs"]] == [("bot-aaaaaaaaaa", 100)]


def test_virtualservice_is_accepted_and_splits_by_cohort(
    cluster: Cluster, upstream_crds: Path, namespace: str
) -> None:
    [vs] = IstioProvider(hosts=["bot.example.com"]).render(_target(namespace), TABLE)
    stored = _create(cluster, vs)
    http = stored["spec"]["http"]  # type: ignore[index]
    assert [r["name"] for r in http] == ["experts", "beta", "everyone"]
    assert http[0]["match"][0]["headers"] == {"x-user-group": {"exact": "expert"}}
    assert [d["weight"] for d in http[1]["route"]] == [75, 25]
    assert http[1]["route"][1]["headers"]["response"]["set"]["x-llm-release"] == "bbbbbbbbbb"


def test_invalid_httproute_is_rejected_by_the_upstream_schema(
    cluster: Cluster, upstream_crds: Path, namespace: str
) -> None:
    [route] = GatewayAPIProvider(parent_refs=[{"name": "gw"}]).render(_target(namespace), TABLE)
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    result = cluster.kubectl("create", "-f", "-", input=json.dumps(route), check=False)
    assert result.returncode != 0
    assert "weight" in result.stderr


def _exists(cluster: Cluster, kind: str, namespace: str, name: str = "bot") -> bool:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "name", check=False)
    return result.returncode == 0


def test_switching_provider_removes_the_previous_providers_objects(
    cluster: Cluster,
    upstream_crds: Path,
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    body = spec("v1")
    body["routing"] = {"provider": "istio", "istio": {"hosts": ["bot.example"]}}
    controlled_metrics.set_quality(namespace, rid(body), 0.9)
    rollouts.create(obj("bot", body))
    wait_for(
        lambda: _exists(cluster, "virtualservice", namespace),
        timeout=30,
        what="the VirtualService",
        describe=lambda: rollouts.describe("bot"),
    )
    istio_status = rollouts.status("bot").get("routingProvider")

    body["routing"] = {"provider": "builtin"}
    rollouts.patch("bot", {"spec": body})
    # A stale VirtualService would keep routing with its old weights.
    wait_for(
        lambda: not _exists(cluster, "virtualservice", namespace),
        timeout=30,
        what="the VirtualService removed",
        describe=lambda: rollouts.describe("bot"),
    )
    wait_for(
        lambda: rollouts.status("bot").get("routingProvider") == "builtin",
        timeout=30,
        what="status says builtin",
        describe=lambda: rollouts.describe("bot"),
    )
    assert "deleted VirtualService" in operator.log_tail(200)
    assert istio_status == "istio"

    body["routing"] = {
        "provider": "gateway-api",
        "gatewayApi": {"parentRefs": [{"name": "public"}]},
    }
    rollouts.patch("bot", {"spec": body})
    wait_for(
        lambda: _exists(cluster, "httproute", namespace),
        timeout=30,
        what="the HTTPRoute",
        describe=lambda: rollouts.describe("bot"),
    )
    assert not _exists(cluster, "virtualservice", namespace)
    body["routing"] = {"provider": "istio"}
    rollouts.patch("bot", {"spec": body})
    wait_for(
        lambda: (
            not _exists(cluster, "httproute", namespace)
            and _exists(cluster, "virtualservice", namespace)
        ),
        timeout=30,
        what="HTTPRoute gone, VirtualService back",
        describe=lambda: rollouts.describe("bot"),
    )
