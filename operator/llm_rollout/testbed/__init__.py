"""The local test bed: a real kube-apiserver, etcd and Prometheus on loopback.

Used by the integration tests (session fixtures), by `make cluster-up` and by
`make demo`. No Docker and no mocks: the binaries are built from the Kubernetes
and etcd Go modules (hack/build-tools.sh), Prometheus comes from Debian.
"""

from llm_rollout.testbed.bed import TestBed, TestBedError

__all__ = ["TestBed", "TestBedError"]
