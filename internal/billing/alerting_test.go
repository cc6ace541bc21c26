package billing

import (
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

func TestProjected(t *testing.T) {
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	cases := []struct {
		name  string
		since time.Duration
		want  float64
		ok    bool
	}{
		{"first hours", 3 * time.Hour, 0, false},
		{"exactly the minimum", ProjectionMinElapsed, 0, false},
		{"two days of thirty", 48 * time.Hour, 1500, true},
		{"half the period", 15 * 24 * time.Hour, 200, true},
	}
	for _, tc := range cases {
		if got, ok := Projected(100, nov, nov.Start.Add(tc.since)); got != tc.want || ok != tc.ok {
			t.Errorf("%s: Projected = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestAlerting: which limits a shipped alert fires for, at the mixin's
// thresholds and limit types.
func TestAlerting(t *testing.T) {
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	firstDay, midMonth := nov.Start.Add(12*time.Hour), nov.Start.Add(15*24*time.Hour)
	limits := plans.Limits{"messages": 100, "storage": 100, "users": 10, "apiCalls": 100}
	cases := []struct {
		name string
		used map[string]int64
		at   time.Time
		want bool
	}{
		{"messages at the near limit", map[string]int64{"messages": NearLimitPercent}, firstDay, false},
		{"messages above the near limit", map[string]int64{"messages": NearLimitPercent + 1}, firstDay, true},
		{"messages projected over", map[string]int64{"messages": 60}, midMonth, true},
		{"storage full", map[string]int64{"storage": 100}, firstDay, true},
		{"seats at the limit", map[string]int64{"users": 10}, firstDay, false},
		{"seats over the limit", map[string]int64{"users": 11}, firstDay, true},
		{"a type the alerts leave out", map[string]int64{"apiCalls": 150}, firstDay, false},
	}
	for _, tc := range cases {
		ts := TenantStatus{ID: "1", Usage: usage.CountersOf(tc.used), Terms: &Terms{LimitsKnown: true, PlanID: "1", Limits: limits}}
		ts.ComputeChecks()
		if got := ts.Alerting(nov, tc.at); got != tc.want {
			t.Errorf("%s: Alerting = %v, want %v", tc.name, got, tc.want)
		}
	}
}
