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

	"github.com/billing-exporter/billing_exporter/billing"
	"github.com/billing-exporter/billing_exporter/sharedread"
)

const namespace = "billing"

// InfoReader reads Redis INFO fields.
type InfoReader interface {
	Info(ctx context.Context) (map[string]string, error)
}

// Scrape is everything one scrape reads: the joined report and Redis INFO.
type Scrape struct {
	Report   *billing.Report
	Info     map[string]string
	InfoErr  error
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
		sc.Info, sc.InfoErr = s.info.Info(ctx)
	}()
	sc.Report = s.service.Report(ctx)
	<-done
	sc.Duration = time.Since(start)
	return sc, nil
}

// Collector is a prometheus.Collector bound to one scrape's context: the
// HTTP handler builds one per request so that the scrape deadline reaches
// every Redis and PostgreSQL call.
type Collector struct {
	ctx     context.Context
	scraper *Scraper
	logger  *slog.Logger
}

// New returns a Collector for one scrape.
func New(ctx context.Context, scraper *Scraper, logger *slog.Logger) *Collector {
	return &Collector{ctx: ctx, scraper: scraper, logger: logger}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads (or joins a read in flight) and emits the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	sc, err := c.scraper.Scrape(c.ctx)
	if err != nil {
		// The scrape's own context ended before the read did: every
		// source is reported down rather than guessed.
		c.logger.Warn("scrape abandoned before the read finished", "err", err)
		ch <- gauge(redisUpDesc, 0)
		return
	}
	r := sc.Report
	if r.UsageErr != nil {
		c.logger.Warn("reading usage from Redis failed", "err", r.UsageErr)
	}
	collectRedis(ch, sc)
	collectUsage(ch, r)
	collectPlans(ch, r)
	collectExporter(ch, sc)
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
