"""Guards of the operator against misuse and races, on the real API server."""

from __future__ import annotations

import copy
import re

import httpx
import pytest
from tests.conftest import Cluster
from tests.integration.support import (
    ControlledMetrics,
    OperatorProcess,
    Rollouts,
    wait_for,
)
from tests.integration.test_operator_rollout import obj, phase_is, rid, spec, start_stable

from llm_rollout import GROUP, VERSION
from llm_rollout.kube.client import KubeClient
from llm_rollout.kube.errors import Conflict
from llm_rollout.testbed.kubelet import KubeletStandIn


async def test_a_stale_status_write_is_a_conflict_not_an_overwrite(
    rollouts: Rollouts, cluster: Cluster
) -> None:
    rollouts.create(obj("bot", spec("v1")))
    verbs: list[str] = []
    kube = KubeClient(cluster.api_client, on_request=verbs.append)
    stale = await kube.get(f"{GROUP}/{VERSION}", "LLMDeployment", rollouts.namespace, "bot")
    assert stale is not None
    fresh = await kube.replace_status(copy.deepcopy(stale), {"message": "first writer"})
    assert fresh["status"]["message"] == "first writer"
    with pytest.raises(Conflict):
        await kube.replace_status(stale, {"message": "second writer, decided on old data"})
    assert rollouts.status("bot")["message"] == "first writer"
    # Every request is counted, the refused one too (llm_rollout_kube_requests_total).
    assert verbs == ["GET", "PUT", "PUT"]


def test_a_prometheus_address_the_operator_does_not_allow_is_invalid_at_once(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
    cluster: Cluster,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    v2 = spec("v2")
    v2["prometheus"] = {"address": "http://169.254.169.254:9090"}
    rollouts.patch("bot", {"spec": v2})
    # Waiting can never fix it: Invalid at the first reconcile, not a pause after
    # errorLimit analyses.
    wait_for(
        lambda: phase_is(rollouts, "bot", "Invalid"),
        timeout=30,
        what="Invalid: the address is refused",
        describe=lambda: rollouts.describe("bot"),
    )
    status = rollouts.status("bot")
    message = status["message"]
    assert "http://169.254.169.254:9090 is not allowed by the operator" in message
    assert "--allow-prometheus=http://169.254.169.254:9090" in message
    assert status["stable"]["id"] == stable
    assert not status.get("candidate")
    assert [h["decision"] for h in status["history"]][-1] == "Invalid"
    # Nothing half-applied: the v2 release was not created.
    deployments = cluster.kubectl("get", "deployments", "-n", namespace, "-o", "name").stdout
    assert stable in deployments
    assert rid(v2) not in deployments
    # Counted where an operator's dashboard looks.
    scrape = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    assert re.search(
        r'llm_rollout_prometheus_query_errors_total\{[^}]*kind="forbidden"'
        r"[^}]*\} [1-9]",
        scrape,
    ), scrape[-2000:]
    assert "is not allowed by the operator" in operator.log_tail(80)


def test_a_missing_bearer_token_secret_is_named_in_the_gate(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    start_stable(rollouts, controlled_metrics, namespace)
    v2 = spec("v2")
    v2["prometheus"] = {"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}
    rollouts.patch("bot", {"spec": v2})
    wait_for(
        lambda: "prom-token" in str(rollouts.status("bot").get("gates")),
        timeout=60,
        what="the Secret named in the gate",
        describe=lambda: rollouts.describe("bot"),
    )
    gate = rollouts.status("bot")["gates"][0]
    assert gate["verdict"] == "Error"
    assert f"Secret {namespace}/prom-token not found" in gate["message"]
