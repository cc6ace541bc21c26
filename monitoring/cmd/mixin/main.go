// Command mixin renders the monitoring mixin (mixin/) into the files people
// load without jsonnet: alerts/*.yml, dashboards/*.json and the Kubernetes
// PrometheusRule and dashboards ConfigMap in examples/kubernetes/.
//
//	cd monitoring && go run ./cmd/mixin -root ..   (or: make mixin)
//
// -config names a jsonnet file of _config overrides (make mixin
// MIXIN_CONFIG=path); nested objects merge field by field.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/billing-exporter/billing_exporter/monitoring"
)

func main() {
	root := flag.String("root", "..", "repository root")
	config := flag.String("config", "", "jsonnet file of _config overrides (default: none)")
	flag.Parse()
	var files map[string][]byte
	var err error
	if *config != "" {
		files, err = monitoring.RenderMixinFile(*root, *config)
	} else {
		files, err = monitoring.RenderMixin(*root, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mixin:", err)
		os.Exit(1)
	}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		dst := filepath.Join(*root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "mixin:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(dst, files[path], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mixin:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", path)
	}
}
