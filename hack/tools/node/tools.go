//go:build tools

// Package tools pins the node binaries of the test bed's real node (the
// controllers, the scheduler, the kubelet and kube-proxy), built from the same
// Kubernetes release as kube-apiserver in ../kube.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
