// Package demo runs an in-process Redis with growing usage for the demo plans.
package demo

import (
	_ "embed"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// unlistedTenants have usage but no plan.
var unlistedTenants = []plans.Tenant{{ID: "51"}, {ID: "52"}}

// State is a situation the exporter shows apart.
type State string

// The demo's states.
const (
	NearLimit       State = "near the messages limit"
	OverLimit       State = "over the messages limit"
	UsersAtLimit    State = "at the users limit"
	SessionsAtLimit State = "at the whatsappSessions limit"
	OnCourse        State = "on course to exceed the month"
	Unlimited       State = "unlimited messages"
	SkippedField    State = "a skipped usage field"
	PlansOnly       State = "plans only, no usage yet"
	Defaults        State = "on default limits"
)

// Scenarios are the tenants given a state; others get random usage.
var Scenarios = map[string]State{
	"1":  NearLimit, // crosses the limit within minutes
	"2":  NearLimit,
	"4":  OverLimit,
	"5":  UsersAtLimit,
	"7":  SessionsAtLimit,
	"3":  OnCourse,
	"8":  Unlimited,
	"10": SkippedField,
	"47": PlansOnly,
}

const skippedValue = "1.5e3"

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

type tenant struct {
	id        string
	state     State
	limits    plans.Limits
	perSecond float64 // share of the messages limit
}

//go:embed plans.yaml
var plansFile []byte

// Plans returns the embedded demo plans.
func Plans() (*plans.FileSource, error) { return plans.ParseFile(plansFile, "demo plans") }

// Start starts a seeded Redis that grows usage every tick until Close.
func Start(cat *plans.Catalog, defaults plans.Limits, pattern usage.KeyPattern, loc *time.Location, tick time.Duration, logger *slog.Logger) (*Demo, error) {
	return start(time.Now, cat, defaults, pattern, loc, tick, logger)
}

func start(now func() time.Time, cat *plans.Catalog, defaults plans.Limits, pattern usage.KeyPattern, loc *time.Location, tick time.Duration, logger *slog.Logger) (*Demo, error) {
	srv := miniredis.NewMiniRedis()
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("demo redis: %w", err)
	}
	d := &Demo{srv: srv, pattern: pattern, loc: loc, now: now, logger: logger, stop: make(chan struct{})}
	rng := rand.New(rand.NewPCG(42, 1))
	rows := append(cat.Tenants(), unlistedTenants...)
	random := 0
	for _, row := range rows {
		id, limits := row.ID, defaults
		if row.Plan != "" {
			limits = cat.Plans[row.Plan].Limits
		}
		t := &tenant{id: id, state: Scenarios[id], limits: limits, perSecond: 0.00002}
		if t.state == "" {
			share := 0.05 + 0.6*rng.Float64()
			if random%12 == 0 {
				share, t.perSecond = 0.72, 0.002
			}
			random++
			d.seedShare(t, share, rng)
		} else {
			d.seedState(t, rng)
		}
		d.tenants = append(d.tenants, t)
	}
	d.wg.Go(func() { d.grow(tick) })
	return d, nil
}

// Addr is Redis' host:port.
func (d *Demo) Addr() string { return d.srv.Addr() }

// Close stops the demo.
func (d *Demo) Close() {
	close(d.stop)
	d.wg.Wait()
	d.srv.Close()
}

var metricTypes = usage.MetricTypeNames(usage.DefaultMetricTypes)

func (t *tenant) limitOf(mt string) int64 {
	if limit, ok := t.limits[mt]; ok {
		return limit
	}
	return 100000
}

func (d *Demo) seedShare(t *tenant, share float64, rng *rand.Rand) {
	values := map[string]int64{}
	for _, mt := range metricTypes {
		v := int64(share * float64(t.limitOf(mt)))
		if mt != "messages" {
			v = int64(float64(v) * (0.5 + 0.5*rng.Float64()))
		}
		values[mt] = v
	}
	d.write(t, values)
}

func (d *Demo) seedState(t *tenant, rng *rand.Rand) {
	if t.state == PlansOnly {
		return
	}
	share := map[State]float64{NearLimit: 0.84, OverLimit: 1.15, UsersAtLimit: 0.4, SessionsAtLimit: 0.3, Unlimited: 2.5, SkippedField: 0.3}[t.state]
	switch t.state {
	case NearLimit:
		if t.id == "2" {
			share = 0.88
		} else {
			t.perSecond = 0.0005
		}
	case OnCourse:
		elapsed := period.At(d.now(), d.loc).Elapsed(d.now())
		share = elapsed + (1-elapsed)/2
		t.perSecond = 0
	}
	// The other types well under their limits: one state per tenant.
	values := map[string]int64{}
	for _, mt := range metricTypes {
		values[mt] = int64(float64(t.limitOf(mt)) * (0.2 + 0.2*rng.Float64()))
	}
	values["messages"] = int64(share * float64(t.limitOf("messages")))
	if mt := map[State]string{UsersAtLimit: "users", SessionsAtLimit: "whatsappSessions"}[t.state]; mt != "" {
		values[mt] = t.limitOf(mt)
	}
	d.write(t, values)
	if t.state == SkippedField {
		d.srv.HSet(d.pattern.Key(t.id, period.At(d.now(), d.loc).ID), "messages", skippedValue)
	}
}

func (d *Demo) write(t *tenant, values map[string]int64) {
	cur := period.At(d.now(), d.loc)
	for mt, v := range values {
		d.srv.HSet(d.pattern.Key(t.id, cur.ID), mt, fmt.Sprint(v))
		d.srv.HSet(d.pattern.Key(t.id, cur.Previous().ID), mt, fmt.Sprint(v/2))
	}
}

func (d *Demo) grow(tick time.Duration) {
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
			if t.state == PlansOnly {
				continue
			}
			limit := t.limitOf("messages")
			inc := max(1, int(t.perSecond*tick.Seconds()*float64(limit)))
			if t.state == OnCourse {
				inc = max(1, int(tick.Seconds()/cur.End.Sub(cur.Start).Seconds()*float64(limit)*1.02))
			}
			if t.state != SkippedField {
				// HINCRBY refuses the skipped field.
				d.incr(t.id, d.pattern.Key(t.id, cur.ID), "messages", inc)
			}
			d.incr(t.id, d.pattern.Key(t.id, cur.ID), "storage", 4096*inc)
		}
	}
}

func (d *Demo) incr(id, key, field string, by int) {
	if _, err := d.srv.HIncrBy(key, field, by); err != nil {
		d.logger.Warn("demo: usage not incremented", "tenant_id", id, "field", field, "err", err)
	}
}
