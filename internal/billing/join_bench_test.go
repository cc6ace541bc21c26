package billing

import (
	"strconv"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// BenchmarkJoin measures the join alone for 100k tenants with usage and a
// catalog that has a row for each (3 % without a plan): the part of a
// scrape that comes after both reads, before any byte is written.
func BenchmarkJoin(b *testing.B) {
	const n = 100000
	snap, used := usage.NewSnapshot("202611"), usage.TenantMap{}
	snap.Tenants = used
	rows := make([]plans.Tenant, n)
	for i := range n {
		id := strconv.Itoa(i)
		used[id] = usage.CountersOf(map[string]int64{"messages": int64(i % 6000), "storage": int64(i) << 12, "users": int64(i % 7), "whatsappSessions": int64(i % 3)})
		rows[i] = plans.Tenant{ID: id, Plan: strconv.Itoa(1 + i%2)}
		if i%33 == 0 {
			rows[i].Plan = "" // a row with no plan, as the default query gives
		}
	}
	cat := plans.NewCatalog(rows...)
	cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "storage": 1 << 30, "users": 5, "whatsappSessions": 1}}
	cat.Plans["2"] = plans.Plan{ID: "2", Name: "pro", Limits: plans.Limits{"messages": 50000, "storage": 10 << 30, "users": 25, "whatsappSessions": 5}}
	ps := PlansState{Configured: true, Source: "postgres", Up: true, Catalog: cat}
	defaults := plans.Limits{"messages": 1000}
	for b.Loop() {
		r := &Report{Usage: snap, Plans: ps}
		r.join(defaults, DefaultThresholds, nil)
		if r.Tenants.Len() != n {
			b.Fatalf("%d tenants joined, want %d", r.Tenants.Len(), n)
		}
	}
}
