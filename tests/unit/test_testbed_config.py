"""The test bed's pure configuration builders: what the control plane and the node are
started with. The e2e tier runs them for real; these pin the settings that keep the bed
on its own addresses and leave the machine as it was."""

from __future__ import annotations

from pathlib import Path

from llm_rollout.testbed.certs import BedCerts
from llm_rollout.testbed.control_plane import (
    DEFAULT_SERVICE_CIDR,
    ApiServerAddress,
    apiserver_argv,
    etcd_argv,
    kubeconfig,
)
from llm_rollout.testbed.node_config import (
    NodeNetwork,
    cni_conflist,
    coredns_manifests,
    kube_proxy_config,
)
from llm_rollout.testbed.prometheus import (
    pods_scrape_config,
    prometheus_config,
    read_targets,
    write_targets,
)

CERTS = BedCerts(
    *(Path(f"/c/{n}") for n in ("ca", "cak", "srv", "srvk", "adm", "admk", "sa", "sap"))
)


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_etcd_listens_on_loopback_only() -> None:
    argv = etcd_argv(Path("/bin/etcd"), Path("/d"), 2379, 2380)
    assert _flag(argv, "--listen-client-urls") == "http://127.0.0.1:2379"
    assert _flag(argv, "--listen-peer-urls") == "http://127.0.0.1:2380"


def test_apiserver_without_a_node_skips_serviceaccount_admission() -> None:
    argv = apiserver_argv(Path("/k"), ApiServerAddress("127.0.0.1", 6443, 2379), CERTS, None)
    assert _flag(argv, "--authorization-mode") == "RBAC"
    assert _flag(argv, "--disable-admission-plugins") == "ServiceAccount"
    assert _flag(argv, "--service-cluster-ip-range") == DEFAULT_SERVICE_CIDR
    assert _flag(argv, "--etcd-servers") == "http://127.0.0.1:2379"


def test_apiserver_with_a_node_authorizes_the_kubelet_and_keeps_admission() -> None:
    net = NodeNetwork()
    addr = ApiServerAddress(net.node_ip, 6443, 2379)
    argv = apiserver_argv(Path("/k"), addr, CERTS, net.service_cidr)
    assert _flag(argv, "--authorization-mode") == "Node,RBAC"
    assert "--disable-admission-plugins" not in argv
    assert _flag(argv, "--bind-address") == net.node_ip
    assert _flag(argv, "--kubelet-client-certificate") == str(CERTS.admin_cert)


def test_kubeconfig_namespace_only_when_given() -> None:
    plain = kubeconfig("https://x:1", "kubelet", Path("ca"), Path("c"), Path("k"))
    assert plain["contexts"][0]["context"] == {"cluster": "bed", "user": "kubelet"}
    admin = kubeconfig("https://x:1", "admin", Path("ca"), Path("c"), Path("k"), "default")
    assert admin["contexts"][0]["context"]["namespace"] == "default"
    assert admin["clusters"][0]["cluster"] == {
        "server": "https://x:1",
        "certificate-authority": "ca",
    }


def test_pods_get_routes_to_the_service_range_only() -> None:
    net = NodeNetwork()
    bridge, *rest = cni_conflist(net, Path("/ipam"))["plugins"]
    assert bridge["ipam"]["routes"] == [{"dst": net.service_cidr}]
    assert bridge["ipMasq"] is False
    assert [p["type"] for p in rest] == ["firewall", "portmap"]


def test_kube_proxy_leaves_localnet_and_conntrack_alone() -> None:
    config = kube_proxy_config(NodeNetwork(), Path("/kc"), 1, 2)
    assert config["iptables"]["localhostNodePorts"] is False
    assert config["conntrack"] == {"maxPerCore": 0, "min": 0}
    assert config["healthzBindAddress"] == "127.0.0.1:1"


def test_coredns_service_maps_53_to_the_unprivileged_port() -> None:
    net = NodeNetwork(dns_ip="10.96.0.53")
    service = next(o for o in coredns_manifests(net) if o["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "10.96.0.53"
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(53, 1053)}


def test_prometheus_scrapes_pods_only_with_a_node(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    assert [c["job_name"] for c in prometheus_config(targets, None)["scrape_configs"]] == ["bed"]
    pods = pods_scrape_config("https://10.244.0.1:6443", tmp_path)
    with_node = prometheus_config(targets, pods)["scrape_configs"]
    assert [c["job_name"] for c in with_node] == ["bed", "pods"]
    assert with_node[1]["kubernetes_sd_configs"][0]["api_server"] == "https://10.244.0.1:6443"


def test_scrape_targets_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    write_targets(path, {"router": "127.0.0.1:9", "operator": "127.0.0.1:8"})
    assert read_targets(path) == {"operator": "127.0.0.1:8", "router": "127.0.0.1:9"}
    assert not path.with_suffix(".tmp").exists()
