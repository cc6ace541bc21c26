package billing

import (
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

func TestMostPressed(t *testing.T) {
	limits := plans.Limits{"messages": 100, "users": 10}
	tenants := []TenantStatus{
		{ID: "low", LimitsKnown: true, Limits: limits, Usage: usage.Counters{"messages": 10}},
		{ID: "over", LimitsKnown: true, Limits: limits, Usage: usage.Counters{"messages": 150}},
		{ID: "users", LimitsKnown: true, Limits: limits, Usage: usage.Counters{"users": 9}},
		{ID: "unlimited-big", LimitsKnown: true, Limits: plans.Limits{}, Usage: usage.Counters{"messages": 1e6}},
		{ID: "unlimited-small", LimitsKnown: true, Limits: plans.Limits{}, Usage: usage.Counters{"messages": 5}},
		{ID: "a-tie", LimitsKnown: true, Limits: limits, Usage: usage.Counters{"messages": 10}},
	}
	for i := range tenants {
		tenants[i].ComputeChecks()
	}
	cases := []struct {
		n    int
		want []string
	}{
		{1, []string{"over"}},
		{3, []string{"over", "users", "a-tie"}},
		{5, []string{"over", "users", "a-tie", "low", "unlimited-big"}},
		{0, []string{"low", "over", "users", "unlimited-big", "unlimited-small", "a-tie"}},
		{99, []string{"low", "over", "users", "unlimited-big", "unlimited-small", "a-tie"}},
	}
	for _, tc := range cases {
		got := MostPressed(tenants, tc.n)
		ids := make([]string, len(got))
		for i := range got {
			ids[i] = got[i].ID
		}
		if len(ids) != len(tc.want) {
			t.Errorf("n=%d: %v, want %v", tc.n, ids, tc.want)
			continue
		}
		for i := range ids {
			if ids[i] != tc.want[i] {
				t.Errorf("n=%d: %v, want %v", tc.n, ids, tc.want)
				break
			}
		}
	}
}
