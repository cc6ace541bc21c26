package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

var (
	usageKeysDesc = newDesc("redis", "usage_keys",
		"Usage keys in Redis that match the key pattern, all periods.")
	invalidDataDesc = newDesc("exporter", "invalid_data_items",
		"Items skipped by the last read because they were invalid, by source and reason.",
		"source", "reason")
)

func collectUsage(ch chan<- prometheus.Metric, r *billing.Report) {
	if !r.UsageUp() {
		return
	}
	ch <- gauge(usageKeysDesc, float64(r.Usage.Keys))
	for _, reason := range usage.Reasons {
		ch <- gauge(invalidDataDesc, float64(r.Usage.Skipped[reason]), "redis", string(reason))
	}
}
