package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/billing"
)

// The per-tenant families are the exporter's only high-cardinality output:
// about 14 series per tenant. They are written by writeTenants (the fast
// path, exposition.go); collectTenants emits the same series through
// client_golang and is the reference the fast path is tested against.

// family is a metric family's name, help and label names, shared by both
// paths so that they cannot drift apart.
type family struct {
	name   string
	help   string
	labels []string
	desc   *prometheus.Desc
}

func newFamily(name, help string, labels ...string) *family {
	return &family{name: name, help: help, labels: labels, desc: prometheus.NewDesc(name, help, labels, nil)}
}

var (
	usageFamily = newFamily("billing_usage",
		"Current-period value of a usage hash field (messages this period, storage bytes, users, WhatsApp sessions).",
		"tenant_id", "metric_type")
	limitFamily = newFamily("billing_usage_limit",
		"Limit in force for the tenant (its plan's, else the defaults); absent when unlimited.",
		"tenant_id", "limit_type")
	percentageFamily = newFamily("billing_usage_percentage",
		"100 × usage / limit for the current period; may exceed 100; absent when unlimited.",
		"tenant_id", "limit_type")
	usingDefaultsFamily = newFamily("billing_tenant_using_defaults",
		"1 when the tenant has no active plan and default limits apply, else 0.",
		"tenant_id")
	planInfoFamily = newFamily("billing_tenant_plan_info",
		"The tenant's plan (plan_id \"none\" without an active plan), for joins in PromQL.",
		"tenant_id", "plan_id", "plan_name")

	tenantFamilies = []*family{usageFamily, limitFamily, percentageFamily, usingDefaultsFamily, planInfoFamily}
)

// tenantSample is one per-tenant series, as both paths produce it.
type tenantSample struct {
	family *family
	value  float64
	labels []string
}

// eachTenantSample calls emit for every per-tenant series of tenants, family
// by family (the text format wants a family's samples together).
func eachTenantSample(tenants []billing.TenantStatus, emit func(f *family, value float64, labels ...string)) {
	for i := range tenants {
		t := &tenants[i]
		for mt, v := range t.Usage {
			emit(usageFamily, float64(v), t.ID, mt)
		}
	}
	for i := range tenants {
		t := &tenants[i]
		t.EachLimit(func(lt string, limit int64, _ float64) { emit(limitFamily, float64(limit), t.ID, lt) })
	}
	for i := range tenants {
		t := &tenants[i]
		t.EachLimit(func(lt string, _ int64, pct float64) { emit(percentageFamily, pct, t.ID, lt) })
	}
	for i := range tenants {
		t := &tenants[i]
		if t.LimitsKnown {
			emit(usingDefaultsFamily, boolFloat(t.UsingDefaults), t.ID)
		}
	}
	for i := range tenants {
		t := &tenants[i]
		if t.LimitsKnown {
			emit(planInfoFamily, 1, t.ID, t.PlanID, t.PlanName)
		}
	}
}

// collectTenants is the client_golang path for the per-tenant families.
func collectTenants(ch chan<- prometheus.Metric, tenants []billing.TenantStatus) {
	eachTenantSample(tenants, func(f *family, value float64, labels ...string) {
		ch <- gauge(f.desc, value, labels...)
	})
}
