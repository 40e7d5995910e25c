"""The bed's real node: pods run, are replaced, and reach the API server and DNS."""

from __future__ import annotations

import json
import time

from llm_rollout.testbed.images import PAUSE_IMAGE
from tests.e2e.conftest import NodeBed


def _deployment(name: str) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}
                    ],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def _pods(node_bed: NodeBed, selector: str) -> list[dict[str, object]]:
    out = node_bed.bed.kubectl("get", "pods", "-l", selector, "-o", "json")
    return list(json.loads(out)["items"])


def test_deployment_becomes_available_and_a_deleted_pod_is_replaced(node_bed: NodeBed) -> None:
    bed = node_bed.bed
    node = json.loads(bed.kubectl("get", "node", "bed-node", "-o", "json"))
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"

    bed.kubectl_apply([_deployment("sleeper")])
    bed.kubectl("rollout", "status", "deployment/sleeper", "--timeout=60s")
    pods = _pods(node_bed, "app=sleeper")
    assert len(pods) == 2
    ips = {p["status"]["podIP"] for p in pods}  # type: ignore[index]
    assert all(ip.startswith("10.244.0.") for ip in ips), ips

    victim = pods[0]["metadata"]["name"]  # type: ignore[index]
    bed.kubectl("delete", "pod", victim, "--wait=false")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = {
            p["metadata"]["name"]  # type: ignore[index]
            for p in _pods(node_bed, "app=sleeper")
            if p["status"].get("phase") == "Running"  # type: ignore[attr-defined]
        }
        if len(names) == 2 and victim not in names:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"pod {victim} was not replaced: {names}")
    bed.kubectl("delete", "deployment", "sleeper", "--wait=true")


def test_cluster_dns_and_services_run_on_the_node(node_bed: NodeBed) -> None:
    bed = node_bed.bed
    dns = json.loads(bed.kubectl("-n", "kube-system", "get", "deploy", "coredns", "-o", "json"))
    assert dns["status"].get("availableReplicas") == 1
    svc = json.loads(bed.kubectl("-n", "kube-system", "get", "svc", "kube-dns", "-o", "json"))
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    # The API server's own Service points at the node's address (pods reach it there).
    slices = json.loads(
        bed.kubectl(
            "get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes", "-o", "json"
        )
    )
    addresses = {a for s in slices["items"] for e in s["endpoints"] for a in e["addresses"]}
    assert addresses == {"10.244.0.1"}
