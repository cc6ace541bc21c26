// Package collector serves billing reads as Prometheus metrics.
package collector

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

const namespace = "billing"

// Collector collects one scrape's read, except the per-tenant families.
type Collector struct {
	read    *billing.Read
	err     error // the scrape's context ended first
	omitted int
	logger  *slog.Logger
}

// New returns a Collector; omitted counts the tenants left out.
func New(read *billing.Read, err error, omitted int, logger *slog.Logger) *Collector {
	return &Collector{read: read, err: err, omitted: omitted, logger: logger}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil {
		// The plans series stay, so that a cut scrape resets no alert.
		c.logger.Debug("scrape abandoned before the read finished", "err", c.err)
		ch <- gauge(redisUpDesc, 0)
		if c.read != nil {
			collectPlans(ch, c.read.Report)
		}
		return
	}
	r := c.read.Report
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
