package collector

import "github.com/billing-exporter/billing_exporter/internal/billing"

type family struct {
	name   string
	help   string
	labels []string
	// tenant calls emit per series of one tenant, lv[0] set to its id.
	tenant tenantSamples
}

// tenantSamples takes emit as an argument: no closure per tenant.
type tenantSamples func(t *billing.TenantStatus, lv *labelValues, emit func(value float64, lv *labelValues))

func newFamily(name, help string, tenant tenantSamples, labels ...string) *family {
	return &family{name: name, help: help, labels: labels, tenant: tenant}
}

var (
	usageFamily = newFamily("billing_usage",
		"Current-period value of a usage hash field (messages this period, storage bytes, users, WhatsApp sessions).",
		func(t *billing.TenantStatus, lv *labelValues, emit func(float64, *labelValues)) {
			t.Usage.Each(func(mt string, v int64) {
				lv[1] = mt
				emit(float64(v), lv)
			})
		}, "tenant_id", "metric_type")
	limitFamily = newFamily("billing_usage_limit",
		"Limit in force for the tenant (its plan's, else the defaults); absent when unlimited.",
		func(t *billing.TenantStatus, lv *labelValues, emit func(float64, *labelValues)) {
			// Also where the usage could not be read.
			t.EachKnownLimit(func(lt string, limit int64) {
				lv[1] = lt
				emit(float64(limit), lv)
			})
		}, "tenant_id", "limit_type")
	percentageFamily = newFamily("billing_usage_percentage",
		"100 × usage / limit for the current period; may exceed 100; absent when unlimited.",
		func(t *billing.TenantStatus, lv *labelValues, emit func(float64, *labelValues)) {
			t.EachLimit(func(lt string, _ int64, pct float64) {
				lv[1] = lt
				emit(pct, lv)
			})
		}, "tenant_id", "limit_type")
	usingDefaultsFamily = newFamily("billing_tenant_using_defaults",
		"1 when the tenant has no active plan and default limits apply, else 0.",
		func(t *billing.TenantStatus, lv *labelValues, emit func(float64, *labelValues)) {
			if t.LimitsKnown {
				emit(boolFloat(t.UsingDefaults), lv)
			}
		}, "tenant_id")
	planInfoFamily = newFamily("billing_tenant_plan_info",
		"The tenant's plan (plan_id \"none\" without an active plan), for joins in PromQL.",
		func(t *billing.TenantStatus, lv *labelValues, emit func(float64, *labelValues)) {
			if t.LimitsKnown {
				lv[1], lv[2] = t.PlanID, t.PlanName
				emit(1, lv)
			}
		}, "tenant_id", "plan_id", "plan_name")

	tenantFamilies = []*family{usageFamily, limitFamily, percentageFamily, usingDefaultsFamily, planInfoFamily}
)

// labelValues is an array so that a series costs no allocation.
type labelValues [3]string
