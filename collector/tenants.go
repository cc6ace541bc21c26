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
	name    string
	help    string
	labels  []string
	desc    *prometheus.Desc
	samples samplesFunc
}

// samplesFunc calls emit for every series of one family for tenants.
type samplesFunc func(tenants []billing.TenantStatus, emit func(value float64, labels *labelValues))

func newFamily(name, help string, samples samplesFunc, labels ...string) *family {
	return &family{name: name, help: help, labels: labels, desc: prometheus.NewDesc(name, help, labels, nil), samples: samples}
}

var (
	usageFamily = newFamily("billing_usage",
		"Current-period value of a usage hash field (messages this period, storage bytes, users, WhatsApp sessions).",
		usageSamples, "tenant_id", "metric_type")
	limitFamily = newFamily("billing_usage_limit",
		"Limit in force for the tenant (its plan's, else the defaults); absent when unlimited.",
		limitSamples, "tenant_id", "limit_type")
	percentageFamily = newFamily("billing_usage_percentage",
		"100 × usage / limit for the current period; may exceed 100; absent when unlimited.",
		percentageSamples, "tenant_id", "limit_type")
	usingDefaultsFamily = newFamily("billing_tenant_using_defaults",
		"1 when the tenant has no active plan and default limits apply, else 0.",
		usingDefaultsSamples, "tenant_id")
	planInfoFamily = newFamily("billing_tenant_plan_info",
		"The tenant's plan (plan_id \"none\" without an active plan), for joins in PromQL.",
		planInfoSamples, "tenant_id", "plan_id", "plan_name")

	tenantFamilies = []*family{usageFamily, limitFamily, percentageFamily, usingDefaultsFamily, planInfoFamily}
)

// labelValues holds a sample's label values, in the family's label order
// (at most three). A fixed array rather than a variadic slice: this runs
// 1.4 million times per scrape at 100k tenants, and a slice per call would
// be a heap allocation per series.
type labelValues [3]string

// emitFunc receives one per-tenant series.
type emitFunc func(f *family, value float64, labels *labelValues)

// eachTenantSample calls emit for every per-tenant series of tenants, family
// by family (the text format wants a family's samples together).
func eachTenantSample(tenants []billing.TenantStatus, emit emitFunc) {
	for _, f := range tenantFamilies {
		f.samples(tenants, func(value float64, lv *labelValues) { emit(f, value, lv) })
	}
}

func usageSamples(tenants []billing.TenantStatus, emit func(float64, *labelValues)) {
	var lv labelValues
	for i := range tenants {
		t := &tenants[i]
		lv[0] = t.ID
		// Readable fields only: one that could not be read has no value.
		t.Usage.Each(func(mt string, v int64) {
			lv[1] = mt
			emit(float64(v), &lv)
		})
	}
}

func limitSamples(tenants []billing.TenantStatus, emit func(float64, *labelValues)) {
	var lv labelValues
	for i := range tenants {
		t := &tenants[i]
		lv[0] = t.ID
		// Every limit that could be read, also where the usage could not:
		// the limit does not depend on it.
		t.EachKnownLimit(func(lt string, limit int64) {
			lv[1] = lt
			emit(float64(limit), &lv)
		})
	}
}

// percentageSamples leaves out every limit type whose usage or limit could
// not be read (EachLimit does): a 0 % would be a wrong number.
func percentageSamples(tenants []billing.TenantStatus, emit func(float64, *labelValues)) {
	var lv labelValues
	for i := range tenants {
		t := &tenants[i]
		lv[0] = t.ID
		t.EachLimit(func(lt string, _ int64, pct float64) {
			lv[1] = lt
			emit(pct, &lv)
		})
	}
}

func usingDefaultsSamples(tenants []billing.TenantStatus, emit func(float64, *labelValues)) {
	var lv labelValues
	for i := range tenants {
		if t := &tenants[i]; t.LimitsKnown {
			lv[0] = t.ID
			emit(boolFloat(t.UsingDefaults), &lv)
		}
	}
}

func planInfoSamples(tenants []billing.TenantStatus, emit func(float64, *labelValues)) {
	var lv labelValues
	for i := range tenants {
		if t := &tenants[i]; t.LimitsKnown {
			lv[0], lv[1], lv[2] = t.ID, t.PlanID, t.PlanName
			emit(1, &lv)
		}
	}
}

// collectTenants is the client_golang path for the per-tenant families.
func collectTenants(ch chan<- prometheus.Metric, tenants []billing.TenantStatus) {
	eachTenantSample(tenants, func(f *family, value float64, lv *labelValues) {
		ch <- gauge(f.desc, value, lv[:len(f.labels)]...)
	})
}
