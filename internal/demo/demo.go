// Package demo runs an in-process Redis (miniredis) holding generated usage
// for the tenants of the embedded demo plans. From the first scrape it
// holds a tenant in every state the exporter distinguishes (see Scenarios),
// and usage keeps growing so that states change while one watches: near a
// limit, past it. The exporter reads it through the same Redis client code
// as in production.
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

// State is a situation of a tenant that the exporter, its alerts or its API
// show differently from the others.
type State string

// The states the demo starts with, one tenant (at least) each.
const (
	// NearLimit: 80–99 % of the messages limit, growing.
	NearLimit State = "near the messages limit"
	// OverLimit: past the messages limit.
	OverLimit State = "over the messages limit"
	// UsersAtLimit: exactly as many users as the plan allows.
	UsersAtLimit State = "at the users limit"
	// SessionsAtLimit: exactly as many WhatsApp sessions as allowed.
	SessionsAtLimit State = "at the whatsappSessions limit"
	// OnCourse: under the messages limit, but at its pace so far past it by
	// the end of the period (the projection needs 24 h of the period).
	OnCourse State = "on course to exceed the month"
	// Unlimited: usage of a type the plan does not limit.
	Unlimited State = "unlimited messages"
	// SkippedField: a usage field that is not an integer, which the
	// exporter skips and counts: no percentage for it.
	SkippedField State = "a skipped usage field"
	// PlansOnly: a tenant of the plans with no usage key yet.
	PlansOnly State = "plans only, no usage yet"
	// Defaults: no active plan (or no row in the plans), default limits.
	Defaults State = "on default limits"
)

// Scenarios are the demo's tenants in a given state, by tenant id of the
// embedded demo plans (plans/demo.yaml). Tenants without a plan are on
// Defaults by themselves; every other tenant gets a random share of its
// limits, a few of them growing fast enough to cross 80 % and 100 % within
// minutes.
var Scenarios = map[string]State{
	"1":  NearLimit, // starter, 84 %, crosses 100 % after about five minutes
	"2":  NearLimit, // starter, 88 %, stays near for the better part of an hour
	"4":  OverLimit, // starter, 115 %
	"5":  UsersAtLimit,
	"7":  SessionsAtLimit,
	"3":  OnCourse,  // pro
	"8":  Unlimited, // enterprise
	"10": SkippedField,
	"47": PlansOnly,
}

// skippedValue is what the SkippedField tenant's messages field holds: a
// float, as a buggy writer might store.
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

// tenant is one generated tenant: its limits and how fast it grows.
type tenant struct {
	id     string
	state  State
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

// Option configures a Demo.
type Option func(*Demo)

// WithClock replaces time.Now, for tests: the period the usage is written
// to, and the pace the OnCourse tenant is given, follow it.
func WithClock(now func() time.Time) Option { return func(d *Demo) { d.now = now } }

// Start starts miniredis on a loopback port and seeds it. Growth is applied
// every tick until Close.
func Start(cat *plans.Catalog, defaults plans.Limits, pattern usage.KeyPattern, loc *time.Location, tick time.Duration, logger *slog.Logger, opts ...Option) (*Demo, error) {
	srv := miniredis.NewMiniRedis()
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("demo redis: %w", err)
	}
	d := &Demo{srv: srv, pattern: pattern, loc: loc, now: time.Now, logger: logger, stop: make(chan struct{})}
	for _, o := range opts {
		o(d)
	}
	rng := rand.New(rand.NewPCG(42, 1))
	ids := slices.Sorted(maps.Keys(cat.Tenants))
	ids = append(ids, unlistedTenants...)
	random := 0
	for _, id := range ids {
		limits := defaults
		if planID := cat.Tenants[id]; planID != "" {
			limits = cat.Plans[planID].Limits
		}
		t := &tenant{id: id, state: Scenarios[id], limits: limits, perSecond: 0.00002}
		if t.state == "" {
			share := 0.05 + 0.6*rng.Float64()
			if random%12 == 0 {
				// Hot tenants: from 72% they pass 80% after about 40 s and
				// 100% after about 2.5 min.
				share, t.perSecond = 0.72, 0.002
			}
			random++
			d.seedShare(t, share, rng)
		} else {
			d.seedState(t, rng)
		}
		d.tenants = append(d.tenants, t)
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

// metricTypes are the fields the demo writes: the known metric types.
var metricTypes = usage.MetricTypeNames(usage.DefaultMetricTypes)

// limitOf is t's limit of a type, or a plausible scale when it is unlimited.
func (t *tenant) limitOf(mt string) int64 {
	if limit, ok := t.limits[mt]; ok {
		return limit
	}
	return 100000
}

// seedShare writes the tenant's hash at share of its limits for this
// period, and a smaller one for the previous period (old keys stay in Redis
// for a while).
func (d *Demo) seedShare(t *tenant, share float64, rng *rand.Rand) {
	values := map[string]int64{}
	for _, mt := range metricTypes {
		v := int64(share * float64(t.limitOf(mt)))
		if mt != "messages" {
			// Current counts hover lower than the accumulating counter.
			v = int64(float64(v) * (0.5 + 0.5*rng.Float64()))
		}
		values[mt] = v
	}
	d.write(t, values)
}

// seedState writes a hash that puts the tenant in its state.
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
			t.perSecond = 0.0005 // 84 % to 100 % in about five minutes
		}
	case OnCourse:
		// Between the pace that would end the period exactly at the limit
		// and the limit itself: under 100 % now, past it by the end.
		elapsed := period.At(d.now(), d.loc).Elapsed(d.now())
		share = elapsed + (1-elapsed)/2
		t.perSecond = 0
	}
	// The other types well under their limits, so that each tenant shows
	// its one state.
	values := map[string]int64{}
	for _, mt := range metricTypes {
		values[mt] = int64(float64(t.limitOf(mt)) * (0.2 + 0.2*rng.Float64()))
	}
	values["messages"] = int64(share * float64(t.limitOf("messages")))
	switch t.state {
	case UsersAtLimit:
		values["users"] = t.limitOf("users")
	case SessionsAtLimit:
		values["whatsappSessions"] = t.limitOf("whatsappSessions")
	}
	d.write(t, values)
	if t.state == SkippedField {
		d.srv.HSet(d.key(t.id, period.At(d.now(), d.loc)), "messages", skippedValue)
	}
}

func (d *Demo) write(t *tenant, values map[string]int64) {
	cur := period.At(d.now(), d.loc)
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
			if t.state == PlansOnly {
				continue // no usage yet
			}
			limit := t.limitOf("messages")
			inc := max(1, int(t.perSecond*tick.Seconds()*float64(limit)))
			if t.state == OnCourse {
				// The pace that keeps the projection where it started.
				p := period.At(d.now(), d.loc)
				inc = max(1, int(tick.Seconds()/p.End.Sub(p.Start).Seconds()*float64(limit)*1.02))
			}
			if t.state != SkippedField {
				// The skipped field stays unreadable (HINCRBY refuses it).
				d.srv.HIncrBy(d.key(t.id, cur), "messages", inc)
			}
			d.srv.HIncrBy(d.key(t.id, cur), "storage", 4096*inc)
		}
	}
}
