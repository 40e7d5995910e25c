// Command coredns is the cluster DNS of the test bed's real node: CoreDNS with only
// the plugins a one-node cluster needs. There is no `forward` plugin, so names
// outside the cluster fail at once instead of leaving the machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order in which plugins see a query (CoreDNS's plugin.cfg order for these).
var directives = []string{"log", "errors", "health", "ready", "kubernetes", "cache", "loop"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
