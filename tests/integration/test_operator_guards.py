"""Guards of the operator against misuse and races, on the real API server."""

from __future__ import annotations

import copy

import pytest
from tests.conftest import Cluster
from tests.integration.support import (
    ControlledMetrics,
    OperatorProcess,
    Rollouts,
    wait_for,
)
from tests.integration.test_operator_rollout import obj, phase_is, spec, start_stable

from llm_rollout import GROUP, VERSION
from llm_rollout.kube.client import Conflict, KubeClient
from llm_rollout.testbed.kubelet import KubeletStandIn


async def test_a_stale_status_write_is_a_conflict_not_an_overwrite(
        rollouts: Rollouts, cluster: Cluster) -> None:
    rollouts.create(obj("bot", spec("v1")))
    kube = KubeClient(cluster.api_client)
    stale = await kube.get(f"{GROUP}/{VERSION}", "LLMDeployment", rollouts.namespace, "bot")
    assert stale is not None
    fresh = await kube.replace_status(copy.deepcopy(stale), {"message": "first writer"})
    assert fresh["status"]["message"] == "first writer"
    with pytest.raises(Conflict):
        await kube.replace_status(stale, {"message": "second writer, decided on old data"})
    assert rollouts.status("bot")["message"] == "first writer"


def test_a_prometheus_address_the_operator_does_not_allow_is_never_queried(
        rollouts: Rollouts, controlled_metrics: ControlledMetrics, kubelet: KubeletStandIn,
        operator: OperatorProcess, namespace: str) -> None:
    start_stable(rollouts, controlled_metrics, namespace)
    v2 = spec("v2")
    v2["prometheus"] = {"address": "http://169.254.169.254:9090"}
    rollouts.patch("bot", {"spec": v2})
    wait_for(lambda: phase_is(rollouts, "bot", "Paused"), timeout=60,
             what="pause: the address is refused", describe=lambda: rollouts.describe("bot"))
    gate = rollouts.status("bot")["gates"][0]
    assert gate["verdict"] == "Error"
    assert "not allowed by the operator" in gate["message"]


def test_a_missing_bearer_token_secret_is_named_in_the_gate(
        rollouts: Rollouts, controlled_metrics: ControlledMetrics, kubelet: KubeletStandIn,
        operator: OperatorProcess, namespace: str) -> None:
    start_stable(rollouts, controlled_metrics, namespace)
    v2 = spec("v2")
    v2["prometheus"] = {"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}
    rollouts.patch("bot", {"spec": v2})
    wait_for(lambda: "prom-token" in str(rollouts.status("bot").get("gates")), timeout=60,
             what="the Secret named in the gate", describe=lambda: rollouts.describe("bot"))
    gate = rollouts.status("bot")["gates"][0]
    assert gate["verdict"] == "Error"
    assert f"Secret {namespace}/prom-token not found" in gate["message"]
