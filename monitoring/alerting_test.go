package monitoring

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-jsonnet"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/period"
)

// TestAlertNumbersMatchDomain: the mixin's alert numbers are the ones the
// exporter ranks tenants, projects usage and links the near-limit list by
// (internal/billing/alerting.go).
func TestAlertNumbersMatchDomain(t *testing.T) {
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{repoPath(t, "mixin")}})
	out, err := vm.EvaluateAnonymousSnippet("alerting_test.jsonnet", "(import 'config.libsonnet')._config")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		NearLimitPercent        float64  `json:"nearLimitPercent"`
		LimitPercent            float64  `json:"limitPercent"`
		PredictionMinAgeSeconds float64  `json:"predictionMinAgeSeconds"`
		ConsumptionLimitTypes   []string `json:"consumptionLimitTypes"`
		SeatLimitTypes          []string `json:"seatLimitTypes"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name       string
		mixin, got any
	}{
		{"nearLimitPercent", cfg.NearLimitPercent, float64(billing.NearLimitPercent)},
		{"limitPercent", cfg.LimitPercent, float64(billing.LimitPercent)},
		{"predictionMinAgeSeconds", cfg.PredictionMinAgeSeconds, billing.ProjectionMinElapsed.Seconds()},
		{"consumptionLimitTypes", fmt.Sprint(cfg.ConsumptionLimitTypes), fmt.Sprint(billing.ConsumptionLimitTypes)},
		{"seatLimitTypes", fmt.Sprint(cfg.SeatLimitTypes), fmt.Sprint(billing.SeatLimitTypes)},
	}
	for _, c := range checks {
		if c.mixin != c.got {
			t.Errorf("mixin %s is %v, internal/billing has %v", c.name, c.mixin, c.got)
		}
	}

	// The age comparison: strictly more than the minimum, in both.
	alerts := loadAlerts(t)
	i := slices.IndexFunc(alerts, func(a *alert) bool { return a.Rule.Alert == "BillingUsagePredictedToExceed" })
	if i < 0 {
		t.Fatal("no BillingUsagePredictedToExceed")
	}
	if want := fmt.Sprintf(" > %g)", cfg.PredictionMinAgeSeconds); !strings.Contains(alerts[i].Rule.Expr, want) {
		t.Errorf("BillingUsagePredictedToExceed compares the period's age otherwise than %q:\n%s", want, alerts[i].Rule.Expr)
	}
	p := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	if _, ok := billing.Projected(1, p, p.Start.Add(billing.ProjectionMinElapsed)); ok {
		t.Error("billing.Projected projects at exactly the minimum age")
	}
	if _, ok := billing.Projected(1, p, p.Start.Add(billing.ProjectionMinElapsed+time.Second)); !ok {
		t.Error("billing.Projected does not project past the minimum age")
	}
}
