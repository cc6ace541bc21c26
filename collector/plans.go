package collector

import (
	"maps"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

var (
	tenantsPerPlanDesc = newDesc("", "tenants_per_plan",
		"Known tenants on each plan; tenants without an active plan under plan_id=\"none\".",
		"plan_id", "plan_name")
	overThresholdDesc = newDesc("", "tenants_over_threshold",
		"Tenants at or above the threshold percentage of a limit type.",
		"limit_type", "threshold")
	periodStartDesc = newDesc("period", "start_timestamp_seconds",
		"Start of the current billing period in the billing time zone, as a Unix time.")
	periodEndDesc = newDesc("period", "end_timestamp_seconds",
		"End of the current billing period (when usage resets), as a Unix time.")
	postgresUpDesc = newDesc("postgres", "up",
		"1 when the last read of the plans from PostgreSQL succeeded, else 0.")
	plansAgeDesc = newDesc("plans", "age_seconds",
		"Age of the plans data in use; grows while the plans source cannot be read.")
)

func collectPlans(ch chan<- prometheus.Metric, r *billing.Report) {
	ch <- gauge(periodStartDesc, float64(r.Period.Start.Unix()))
	ch <- gauge(periodEndDesc, float64(r.Period.End.Unix()))

	ps := r.Plans
	if ps.Configured {
		if ps.Source == "postgres" {
			ch <- gauge(postgresUpDesc, boolFloat(ps.Up))
		}
		if ps.Catalog != nil {
			ch <- gauge(plansAgeDesc, r.At.Sub(ps.LoadedAt).Seconds())
			for _, reason := range slices.Sorted(maps.Keys(ps.Catalog.Invalid)) {
				ch <- gauge(invalidDataDesc, float64(ps.Catalog.Invalid[reason]), ps.Source, reason)
			}
		}
	}

	for _, pc := range r.PerPlan {
		ch <- gauge(tenantsPerPlanDesc, float64(pc.Tenants), pc.PlanID, pc.PlanName)
	}
	for _, tc := range r.OverThreshold {
		ch <- gauge(overThresholdDesc, float64(tc.Tenants), tc.LimitType, strconv.FormatFloat(tc.Threshold, 'f', -1, 64))
	}
}
