package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

var (
	scrapeDurationDesc = newDesc("exporter", "scrape_duration_seconds",
		"Time this scrape spent reading each source; for the plans, their last read.", "source")
	tenantsOmittedDesc = newDesc("exporter", "tenants_omitted",
		"Known tenants whose per-tenant series were left out (--metrics.max-tenants, --no-metrics.tenant-series).")
)

func collectExporter(ch chan<- prometheus.Metric, read *billing.Read) {
	r := read.Report
	ch <- gauge(scrapeDurationDesc, r.UsageDuration.Seconds(), "redis")
	if r.Plans.Configured {
		ch <- gauge(scrapeDurationDesc, r.Plans.Duration.Seconds(), r.Plans.Source)
	}
	ch <- gauge(scrapeDurationDesc, read.Duration.Seconds(), "total")
}

// Instruments are the exporter's own long-lived metrics.
type Instruments struct {
	RedisOperationDuration *prometheus.HistogramVec
}

// NewInstruments registers the Instruments.
func NewInstruments(reg prometheus.Registerer) *Instruments {
	in := &Instruments{
		RedisOperationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Subsystem: "redis",
			Name:      "operation_duration_seconds",
			Help:      "Duration of the exporter's own Redis round trips by operation (a pipelined batch is one round trip).",
			Buckets:   []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5},
		}, []string{"operation"}),
	}
	reg.MustRegister(in.RedisOperationDuration)
	return in
}

// ObserveRedis records one Redis round trip; it fits conn.Observer.
func (in *Instruments) ObserveRedis(operation string, d time.Duration) {
	in.RedisOperationDuration.WithLabelValues(operation).Observe(d.Seconds())
}
