// Package collector is the Prometheus view of the billing core: it turns one
// billing.Read (the core's shared read; a scrape never reads a source
// itself) into metrics. Every per-scrape value is a const metric built in
// Collect; the per-tenant families are written by a fast text writer
// (exposition.go). The only long-lived metrics are the exporter's own
// histograms (see Instruments).
package collector

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

const namespace = "billing"

// Collector is a prometheus.Collector over one scrape's result: the HTTP
// handler reads (under the request's deadline) and builds one per request.
//
// The per-tenant families are not collected here: the handler writes them
// with the fast writer (writeTenants).
type Collector struct {
	read    *billing.Read
	err     error // the read was abandoned: the scrape's context ended first
	omitted int
	logger  *slog.Logger
}

// New returns a Collector for the result of one scrape; omitted is how many
// known tenants' series were left out.
func New(read *billing.Read, err error, omitted int, logger *slog.Logger) *Collector {
	return &Collector{read: read, err: err, omitted: omitted, logger: logger}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect emits the metrics of the scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil {
		// The scrape's own context ended before the read did: Redis is
		// reported down rather than guessed.
		// The plans' health as last known and the period are still
		// stated: every scrape carries the source-health series, so that
		// one cut scrape does not reset the alerts built on them.
		c.logger.Warn("scrape abandoned before the read finished", "err", c.err)
		ch <- gauge(redisUpDesc, 0)
		if c.read != nil {
			collectPlans(ch, c.read.Report)
		}
		return
	}
	r := c.read.Report
	if r.UsageErr != nil {
		c.logger.Warn("reading usage from Redis failed", "err", r.UsageErr)
	}
	collectRedis(ch, c.read)
	collectUsage(ch, r)
	collectPlans(ch, r)
	collectExporter(ch, c.read)
	if r.UsageUp() {
		ch <- gauge(tenantsOmittedDesc, float64(c.omitted))
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var allDescs []*prometheus.Desc

func newDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
	allDescs = append(allDescs, d)
	return d
}
