"""The test bed is real: a kube-apiserver we built, etcd behind it, a scraping Prometheus."""

from __future__ import annotations

import re
import threading
from typing import Any

from kubernetes import client, watch
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from tests.conftest import REPO_ROOT, Cluster, Prometheus


def _pinned_kubernetes_version() -> str:
    go_mod = (REPO_ROOT / "hack/tools/kube/go.mod").read_text()
    match = re.search(r"^require k8s.io/kubernetes (v\S+)", go_mod, re.M)
    assert match, "hack/tools/kube/go.mod pins no k8s.io/kubernetes version"
    return match.group(1)


def test_server_version_is_the_one_built(cluster: Cluster) -> None:
    assert cluster.version == _pinned_kubernetes_version()
    out = cluster.kubectl("version", "-o", "json").stdout
    assert f'"gitVersion": "{_pinned_kubernetes_version()}"' in out


def test_rbac_is_enforced(cluster: Cluster, namespace: str) -> None:
    # An unprivileged identity is refused: authorization is RBAC, not AlwaysAllow.
    result = cluster.kubectl("get", "configmaps", "-n", namespace, "--as", "someone", check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()


def test_watch_sees_a_change(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    seen: list[tuple[str, str]] = []
    # Watch from the list's resourceVersion: every change after it is an event, however
    # late the watch connects (starting the thread is no guarantee it is connected).
    listed = core.list_namespaced_config_map(namespace).metadata.resource_version

    def watch_configmaps() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map, namespace, resource_version=listed, timeout_seconds=20
        ):
            obj: Any = event["object"]
            seen.append((event["type"], obj.metadata.name))
            if obj.metadata.name == "watched" and event["type"] == "MODIFIED":
                w.stop()

    thread = threading.Thread(target=watch_configmaps, daemon=True)
    thread.start()
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"a": "1"})
    core.create_namespaced_config_map(namespace, body)
    core.patch_namespaced_config_map("watched", namespace, {"data": {"a": "2"}})
    thread.join(25)
    assert ("ADDED", "watched") in seen
    assert ("MODIFIED", "watched") in seen


def test_prometheus_scrapes_a_target_started_by_the_test(prometheus: Prometheus) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("bed_smoke_value", "A value set by the smoke test", registry=registry)
    gauge.set(42.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        prometheus.add_target("smoke", f"127.0.0.1:{port}")
        assert prometheus.wait_value('bed_smoke_value{bed_target="smoke"}') == 42.5
        gauge.set(7)
        # The 1 s scrape interval makes a change visible within seconds.
        deadline_value = prometheus.wait_value('bed_smoke_value{bed_target="smoke"} == 7')
        assert deadline_value == 7
    finally:
        prometheus.remove_target("smoke")
        server.shutdown()
        thread.join(5)
