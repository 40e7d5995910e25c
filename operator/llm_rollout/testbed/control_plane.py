"""How the bed's control plane is started: pure builders of etcd's and kube-apiserver's
command lines, and of the kubeconfigs its clients use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_rollout.testbed.certs import BedCerts

# Without a node the API server still needs a Service range; nothing routes it.
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"


def etcd_argv(binary: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(binary),
        "--name", "bed",
        "--data-dir", str(data_dir),
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"bed={peer}",
        "--unsafe-no-fsync",
        "--log-level", "warn",
    ]  # fmt: skip


@dataclass(frozen=True)
class ApiServerAddress:
    host: str
    port: int
    etcd_port: int


def apiserver_argv(
    binary: Path, address: ApiServerAddress, certs: BedCerts, node_service_cidr: str | None
) -> list[str]:
    """`node_service_cidr`: the node's Service range when a real node joins, else None."""
    argv = [
        str(binary),
        "--bind-address", address.host,
        "--advertise-address", address.host,
        "--secure-port", str(address.port),
        "--etcd-servers", f"http://127.0.0.1:{address.etcd_port}",
        "--tls-cert-file", str(certs.serving_cert),
        "--tls-private-key-file", str(certs.serving_key),
        "--client-ca-file", str(certs.ca_cert),
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(certs.sa_pub),
        "--service-account-signing-key-file", str(certs.sa_key),
        "--service-cluster-ip-range", node_service_cidr or DEFAULT_SERVICE_CIDR,
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "-v", "1",
    ]  # fmt: skip
    if node_service_cidr is not None:
        # The kubelet is authorized as a node; the API server reaches it (logs,
        # exec) as the admin.
        argv += [
            "--authorization-mode", "Node,RBAC",
            "--kubelet-preferred-address-types", "InternalIP",
            "--kubelet-client-certificate", str(certs.admin_cert),
            "--kubelet-client-key", str(certs.admin_key),
        ]  # fmt: skip
    else:
        # No controller-manager runs here, so nothing creates the default
        # ServiceAccount that this admission plugin insists on.
        argv += ["--authorization-mode", "RBAC", "--disable-admission-plugins", "ServiceAccount"]
    return argv


def kubeconfig(
    server: str, user: str, ca: Path, cert: Path, key: Path, namespace: str | None = None
) -> dict[str, Any]:
    """A kubeconfig of one cluster (`bed`) and one client-certificate user."""
    context: dict[str, str] = {"cluster": "bed", "user": user}
    if namespace is not None:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "bed", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": "bed", "context": context}],
        "current-context": "bed",
    }
