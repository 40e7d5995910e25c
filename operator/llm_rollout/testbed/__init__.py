"""The local test bed: a real kube-apiserver, etcd and Prometheus on loopback, and with
`node=True` a real node (containerd, kubelet, kube-proxy, controllers, CoreDNS).

Used by the integration and e2e tests (session fixtures), by `make cluster-up` and by
`make demo`. No mocks: the binaries are built from their Go modules
(hack/build-tools.sh); Prometheus is Debian's, or the one built with Kubernetes service
discovery for a node.
"""

from llm_rollout.testbed.bed import TestBed, TestBedError

__all__ = ["TestBed", "TestBedError"]
