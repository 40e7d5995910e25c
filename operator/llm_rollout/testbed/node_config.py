"""What the node's parts are configured with: pure builders of containerd's config, the
CNI network list, the kubelet's and kube-proxy's configurations and CoreDNS' objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_rollout.testbed.images import COREDNS_IMAGE, PAUSE_IMAGE

NODE_NAME = "bed-node"
CNI_BIN_DIR = Path("/usr/lib/cni")


@dataclass
class NodeNetwork:
    """Addresses of the node. Only these (and loopback) ever carry the bed's traffic."""

    bridge: str = "llmbr0"
    node_ip: str = "10.244.0.1"
    pod_cidr: str = "10.244.0.0/24"
    service_cidr: str = "10.96.0.0/16"
    first_service_ip: str = "10.96.0.1"
    dns_ip: str = "10.96.0.10"


def containerd_config(base: Path, socket: Path, cni_conf: Path) -> str:
    """containerd's config.toml: its own root, state and socket (never a Docker engine's)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # The process lacks CAP_SYS_RESOURCE to lower oom_score_adj: without this, runc
  # fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf}"
  max_conf_num = 1
"""


def cni_conflist(net: NodeNetwork, ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "bed",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": net.pod_cidr, "gateway": net.node_ip}]],
                    # Pods get routes to the pod and Service ranges only: no
                    # default route, nothing else is reachable from a pod.
                    "routes": [{"dst": net.service_cidr}],
                },
            },
            # A Docker engine on the machine sets the FORWARD policy to DROP.
            {"type": "firewall", "backend": "iptables"},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


@dataclass(frozen=True)
class KubeletFiles:
    """Where the kubelet finds its certificates, runtime and own directories."""

    ca: Path
    serving_cert: Path
    containerd_socket: Path
    resolv_conf: Path
    pod_logs: Path


def kubelet_config(
    net: NodeNetwork, files: KubeletFiles, port: int, healthz_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(files.serving_cert),
        "tlsPrivateKeyFile": str(files.serving_cert.with_suffix(".key")),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(files.ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{files.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        # Kubernetes 1.35 refuses cgroup v1 unless told; many machines still run it.
        "failCgroupV1": False,
        "clusterDomain": "cluster.local",
        "clusterDNS": [net.dns_ip],
        "resolvConf": str(files.resolv_conf),
        "podLogsDir": str(files.pod_logs),
        "staticPodPath": "",
        "serializeImagePulls": False,
        # Images are imported, never pulled: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 60,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": True,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(
    net: NodeNetwork, kubeconfig: Path, healthz_port: int, metrics_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": net.pod_cidr,
        "hostnameOverride": NODE_NAME,
        "bindAddress": net.node_ip,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{net.node_ip}/32"],
        # Otherwise kube-proxy sets route_localnet=1 on every interface.
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # Leave the kernel's conntrack settings alone.
        "conntrack": {"maxPerCore": 0, "min": 0},
        "oomScoreAdj": 0,
    }


def coredns_manifests(net: NodeNetwork) -> list[dict[str, Any]]:
    """CoreDNS as the cluster DNS: its RBAC, Corefile, Deployment and Service."""
    labels = {"k8s-app": "kube-dns"}
    corefile = (
        # A non-root container cannot bind port 53; the Service maps 53 to 1053.
        ".:1053 {\n    errors\n    health :8080\n    ready :8181\n"
        "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
        "        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }\n"
        "    cache 30\n    loop\n}\n"
    )
    meta = {"name": "coredns", "namespace": "kube-system", "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "bed:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "bed:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "bed:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"Corefile": corefile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"containerPort": 1053, "protocol": "UDP", "name": "dns"},
                                    {
                                        "containerPort": 1053,
                                        "protocol": "TCP",
                                        "name": "dns-tcp",
                                    },
                                ],
                                "securityContext": {
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": net.dns_ip,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]
