//go:build tools

// Package tools pins Prometheus for the test bed's real node. Debian's package
// is built without Kubernetes service discovery, which the node's Prometheus uses
// to find the pods; build-tools.sh builds it with that discovery alone
// (-tags remove_all_sd,enable_kubernetes_sd).
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
