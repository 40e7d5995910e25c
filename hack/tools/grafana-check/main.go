// grafana-check validates Grafana dashboard JSON files against Grafana's dashboard
// model, as published in the Grafana Foundation SDK (types generated from Grafana's
// schemas): strict decoding (unknown fields, wrong types and missing required fields
// are errors; panel options and Prometheus queries decoded by their own types), then
// the model's own Validate().
//
//	go run . dashboard.json [...]
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-check DASHBOARD.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		var model dashboard.Dashboard
		if err := model.UnmarshalJSONStrict(raw); failure(err) {
			fmt.Fprintf(os.Stderr, "%s: not a valid Grafana dashboard:\n%v\n", path, err)
			failed = true
			continue
		}
		if err := model.Validate(); failure(err) {
			fmt.Fprintf(os.Stderr, "%s: invalid Grafana dashboard:\n%v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: valid (%d panels)\n", path, len(model.Panels))
	}
	if failed {
		os.Exit(1)
	}
}

// failure: the SDK returns its error list typed, so "no error" can be a nil list in a
// non-nil interface.
func failure(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}
