// Package collector turns the billing core's Report into Prometheus metrics.
// Every per-scrape value is a const metric built in Collect, from one shared
// read per scrape; the only long-lived metrics are the exporter's own
// histograms (see Instruments).
package collector

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redisstore"
	"github.com/billing-exporter/billing_exporter/internal/sharedread"
)

const namespace = "billing"

// InfoReader reads Redis INFO fields.
type InfoReader interface {
	Info(ctx context.Context) (map[string]string, error)
}

// NodeInfoReader is implemented by an InfoReader over a Redis Cluster
// (redisstore.Cluster): INFO of every master, for per-node metrics. The
// Scraper uses it instead of Info when it is there, and sums the nodes for
// the cluster-wide memory and connections gauges.
type NodeInfoReader interface {
	NodeInfo(ctx context.Context) []redisstore.NodeInfo
}

// Scrape is everything one scrape reads: the joined report and Redis INFO.
type Scrape struct {
	Report   *billing.Report
	Info     map[string]string
	InfoErr  error
	Nodes    []redisstore.NodeInfo // per master, in cluster mode only
	Duration time.Duration
}

// Scraper performs scrapes, sharing one read among concurrent callers.
type Scraper struct {
	service *billing.Service
	info    InfoReader
	group   sharedread.Group[*Scrape]
}

// NewScraper returns a Scraper over the billing service and a Redis INFO
// reader.
func NewScraper(service *billing.Service, info InfoReader) *Scraper {
	return &Scraper{service: service, info: info}
}

// Scrape returns the result of the read in flight or of a new one.
func (s *Scraper) Scrape(ctx context.Context) (*Scrape, error) {
	return s.group.Do(ctx, s.read)
}

func (s *Scraper) read(ctx context.Context) (*Scrape, error) {
	start := time.Now()
	sc := &Scrape{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if nr, ok := s.info.(NodeInfoReader); ok {
			sc.Nodes = nr.NodeInfo(ctx)
			sc.Info, sc.InfoErr = redisstore.SumInfo(sc.Nodes)
			return
		}
		sc.Info, sc.InfoErr = s.info.Info(ctx)
	}()
	sc.Report = s.service.Report(ctx)
	<-done
	sc.Duration = time.Since(start)
	return sc, nil
}

// TenantMode says how a Collector handles the per-tenant families.
type TenantMode int

const (
	// TenantsWritten: the handler writes them with the fast text writer;
	// Collect leaves them out.
	TenantsWritten TenantMode = iota
	// TenantsCollected: Collect emits them through client_golang (the
	// reference path, and what a caller gathering a registry gets).
	TenantsCollected
)

// Collector is a prometheus.Collector over one scrape's result: the HTTP
// handler reads (under the request's deadline) and builds one per request.
type Collector struct {
	scrape  *Scrape
	err     error // the read was abandoned: the scrape's context ended first
	tenants []billing.TenantStatus
	omitted int
	mode    TenantMode
	logger  *slog.Logger
}

// New returns a Collector for the result of one scrape. tenants are the
// tenants whose series are exported (all, or the cap's selection) and
// omitted how many were left out.
func New(sc *Scrape, err error, tenants []billing.TenantStatus, omitted int, mode TenantMode, logger *slog.Logger) *Collector {
	return &Collector{scrape: sc, err: err, tenants: tenants, omitted: omitted, mode: mode, logger: logger}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
	if c.mode == TenantsCollected {
		for _, f := range tenantFamilies {
			ch <- f.desc
		}
	}
}

// Collect emits the metrics of the scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil {
		// The scrape's own context ended before the read did: Redis is
		// reported down rather than guessed.
		c.logger.Warn("scrape abandoned before the read finished", "err", c.err)
		ch <- gauge(redisUpDesc, 0)
		return
	}
	sc := c.scrape
	r := sc.Report
	if r.UsageErr != nil {
		c.logger.Warn("reading usage from Redis failed", "err", r.UsageErr)
	}
	collectRedis(ch, sc)
	collectUsage(ch, r)
	collectPlans(ch, r)
	collectExporter(ch, sc)
	if r.UsageUp() {
		ch <- gauge(tenantsOmittedDesc, float64(c.omitted))
	}
	if c.mode == TenantsCollected {
		collectTenants(ch, c.tenants)
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
