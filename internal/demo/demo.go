// Package demo runs an in-process Redis (miniredis) holding generated usage
// for the tenants of the embedded demo plans, growing over time so that a
// few tenants cross 80% and 100% of a limit within minutes. The exporter
// reads it through the same Redis client code as in production.
package demo

import (
	_ "embed"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Tenants without a row in the demo plans, so the demo shows usage-only
// tenants falling back to default limits.
var unlistedTenants = []string{"51", "52"}

// Demo is a running demo Redis.
type Demo struct {
	srv     *miniredis.Miniredis
	pattern usage.KeyPattern
	loc     *time.Location
	now     func() time.Time
	logger  *slog.Logger
	tenants []*tenant
	stop    chan struct{}
	wg      sync.WaitGroup
}

// tenant is one generated tenant: its limits and how fast it grows.
type tenant struct {
	id     string
	limits plans.Limits
	// perSecond is the share of the messages limit added every second.
	perSecond float64
}

// plansFile is the demo's plans: three plans, fifty tenants (three of them
// with no active plan) and default limits.
//
//go:embed plans.yaml
var plansFile []byte

// Plans returns the embedded demo plans, which --demo serves as its plans
// source and seeds Redis from.
func Plans() (*plans.FileSource, error) { return plans.ParseFile(plansFile, "demo plans") }

// Start starts miniredis on a loopback port and seeds it. Growth is applied
// every tick until Close.
func Start(cat *plans.Catalog, defaults plans.Limits, pattern usage.KeyPattern, loc *time.Location, tick time.Duration, logger *slog.Logger) (*Demo, error) {
	srv := miniredis.NewMiniRedis()
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("demo redis: %w", err)
	}
	d := &Demo{srv: srv, pattern: pattern, loc: loc, now: time.Now, logger: logger, stop: make(chan struct{})}
	rng := rand.New(rand.NewPCG(42, 1))
	ids := slices.Sorted(maps.Keys(cat.Tenants))
	ids = append(ids, unlistedTenants...)
	for i, id := range ids {
		limits := defaults
		if planID := cat.Tenants[id]; planID != "" {
			limits = cat.Plans[planID].Limits
		}
		t := &tenant{id: id, limits: limits, perSecond: 0.00002}
		share := 0.05 + 0.6*rng.Float64()
		if i%12 == 0 {
			// Hot tenants: from 72% they pass 80% after about 40 s and 100%
			// after about 2.5 min.
			share, t.perSecond = 0.72, 0.002
		}
		d.tenants = append(d.tenants, t)
		d.seed(t, share, rng)
	}
	d.wg.Add(1)
	go d.grow(tick)
	return d, nil
}

// Addr is the host:port of the demo Redis.
func (d *Demo) Addr() string { return d.srv.Addr() }

// Close stops growth and the server.
func (d *Demo) Close() {
	close(d.stop)
	d.wg.Wait()
	d.srv.Close()
}

func (d *Demo) key(id string, p period.Period) string { return d.pattern.Key(id, p.ID) }

// seed writes the tenant's hash for this period and a smaller one for the
// previous period (old keys stay in Redis for a while).
func (d *Demo) seed(t *tenant, share float64, rng *rand.Rand) {
	cur := period.At(d.now(), d.loc)
	values := map[string]int64{}
	for _, mt := range usage.MetricTypeNames(usage.DefaultMetricTypes) {
		limit, ok := t.limits[mt]
		if !ok {
			limit = 100000 // unlimited: any plausible figure
		}
		v := int64(share * float64(limit))
		if mt != "messages" {
			// Current counts hover lower than the accumulating counter.
			v = int64(float64(v) * (0.5 + 0.5*rng.Float64()))
		}
		values[mt] = v
	}
	for mt, v := range values {
		d.srv.HSet(d.key(t.id, cur), mt, fmt.Sprint(v))
		d.srv.HSet(d.key(t.id, cur.Previous()), mt, fmt.Sprint(v/2))
	}
}

func (d *Demo) grow(tick time.Duration) {
	defer d.wg.Done()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-ticker.C:
		}
		cur := period.At(d.now(), d.loc)
		for _, t := range d.tenants {
			limit, ok := t.limits["messages"]
			if !ok {
				limit = 100000
			}
			inc := max(1, int(t.perSecond*tick.Seconds()*float64(limit)))
			for field, by := range map[string]int{"messages": inc, "storage": 4096 * inc} {
				if _, err := d.srv.HIncrBy(d.key(t.id, cur), field, by); err != nil {
					d.logger.Warn("demo: usage not incremented", "tenant_id", t.id, "field", field, "err", err)
				}
			}
		}
	}
}
