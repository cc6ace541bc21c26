package config

import (
	"math"
	"strings"
	"testing"
)

// FuzzParse: any config file either fails with a "name:line:" error or
// yields usable settings.
func FuzzParse(f *testing.F) {
	f.Add("thresholds: [50, 80, 90, 100]\n")
	f.Add("metric_types:\n  - {name: messages, monthly_reset: true}\n")
	f.Add("defaults:\n  limits: {messages: 1000}\nplans_query: SELECT 1\n")
	f.Add("thresholds: [.nan, -1, 1e400]\n")
	f.Add("unknown: 1\n")
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := Parse([]byte(data), "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, th := range cfg.Thresholds {
			if !(th > 0) || math.IsInf(th, 0) {
				t.Fatalf("threshold %v accepted", th)
			}
		}
		if len(cfg.MetricTypes) == 0 {
			t.Fatal("no metric types")
		}
		for mt, l := range cfg.Defaults {
			if l <= 0 || mt == "" {
				t.Fatalf("default %q = %d", mt, l)
			}
		}
	})
}
