// Package billing is the exporter's core and the one owner of every read:
// it reads the usage state, Redis INFO and the plan limits, joins them into
// one Report per read, shares that read among concurrent callers and
// decides when a completed read may be reused (read.go). The Prometheus
// collector and the HTTP API are both views of the same Read; neither
// reads a source, computes a limit or a percentage, or judges the plans'
// freshness on its own.
package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/sharedread"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Store is the Redis side of the core: usage hashes and INFO. read.Reader
// implements it for one server and for Redis Cluster.
type Store interface {
	UsageReader
	InfoReader
}

// UsageReader reads usage hashes.
type UsageReader interface {
	ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error)
	ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error)
}

// DefaultThresholds are the percentages counted by tenants-over-threshold.
var DefaultThresholds = []float64{50, 80, 90, 100}

// Config is what a reload may replace: the plans source and the settings
// of the join. A read takes the Config in force when it starts and keeps it
// to the end, so a reload never changes a read in flight.
type Config struct {
	Plans       plans.Source // nil: no plans source, every tenant on defaults
	PlansName   string       // "postgres" or "file": what reports and logs call it
	Defaults    plans.Limits
	MetricTypes []usage.MetricType // nil: usage.DefaultMetricTypes
	Thresholds  []float64          // nil: DefaultThresholds
}

// generation is one Config and the shared read of the reads made under it.
// A reload starts a new generation: callers arriving after it never join a
// read started under the old Config, and reads in flight finish on theirs.
type generation struct {
	Config
	group sharedread.Group[*Read]
}

// Service reads and joins. It is safe for concurrent use.
type Service struct {
	store    Store
	pattern  usage.KeyPattern
	loc      *time.Location
	now      func() time.Time
	maxTypes int // distinct metric types kept; 0: no cap (a flag: not reloaded)
	logger   *slog.Logger

	initial Config // what the options set, before New publishes it
	gen     atomic.Pointer[generation]

	mu        sync.Mutex
	catalog   *plans.Catalog // last catalog read successfully
	catalogAt time.Time
	plansErr  error // of the last read of the plans source; nil when it worked
	// otherTypes are the unconfigured metric types the last full read
	// kept under the cap (nil before one): one tenant's read keeps the
	// same ones, so that the API and /metrics agree.
	otherTypes map[string]bool
	// joined is the last report joined with usage, under joinedGen: the
	// next join reuses what did not change (Report.join).
	joined    *Report
	joinedGen *generation

	reads reads

	// Failures are logged on change (failureLog), not once per read.
	usageLog, infoLog, plansLog failureLog
}

// Option configures a Service.
type Option func(*Service)

// WithPlans sets the plans source; name ("postgres", "file") is what reports
// and logs call it.
func WithPlans(src plans.Source, name string) Option {
	return func(s *Service) { s.initial.Plans, s.initial.PlansName = src, name }
}

// WithKeyPattern sets the usage key pattern.
func WithKeyPattern(p usage.KeyPattern) Option { return func(s *Service) { s.pattern = p } }

// WithLocation sets the billing time zone.
func WithLocation(loc *time.Location) Option { return func(s *Service) { s.loc = loc } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithDefaults sets the limits of tenants without an active plan.
func WithDefaults(l plans.Limits) Option { return func(s *Service) { s.initial.Defaults = l } }

// WithMetricTypes sets the known metric types.
func WithMetricTypes(mt []usage.MetricType) Option {
	return func(s *Service) { s.initial.MetricTypes = mt }
}

// WithMaxMetricTypes caps the distinct metric types of a read (the
// configured ones always kept first; see usage.Snapshot.CapMetricTypes).
// 0 means no cap.
func WithMaxMetricTypes(n int) Option { return func(s *Service) { s.maxTypes = max(n, 0) } }

// WithThresholds sets the percentages counted by tenants-over-threshold.
func WithThresholds(th []float64) Option { return func(s *Service) { s.initial.Thresholds = th } }

// WithMaxAge sets how long Recent reuses a completed read (default
// DefaultMaxAge). Zero reads on every call, still sharing a read in flight.
func WithMaxAge(d time.Duration) Option { return func(s *Service) { s.reads.maxAge = max(d, 0) } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.logger = l } }

// New returns a Service reading usage and INFO from store.
func New(store Store, opts ...Option) *Service {
	s := &Service{
		store:   store,
		pattern: usage.MustParseKeyPattern(usage.DefaultKeyPattern),
		loc:     time.UTC,
		now:     time.Now,
		logger:  slog.New(slog.DiscardHandler),
		reads:   reads{maxAge: DefaultMaxAge},
	}
	for _, o := range opts {
		o(s)
	}
	s.usageLog = failureLog{logger: s.logger, what: "reading usage from Redis"}
	s.infoLog = failureLog{logger: s.logger, what: "reading Redis INFO (the memory, connection and replication gauges are absent meanwhile)"}
	s.plansLog = failureLog{logger: s.logger, what: "reading the plans source"}
	s.Reconfigure(s.initial)
	return s
}

// Reconfigure replaces the Config atomically (a reload). Reads in flight
// finish on the Config they started with; every read, scrape or API
// request starting after Reconfigure returns uses c, and a completed read
// made under an older Config is never reused. The last catalog read stays
// the fallback for a plans source that fails, until the new source is read.
func (s *Service) Reconfigure(c Config) {
	if c.Defaults == nil {
		c.Defaults = plans.Limits{}
	}
	if c.MetricTypes == nil {
		c.MetricTypes = usage.DefaultMetricTypes
	}
	if c.Thresholds == nil {
		c.Thresholds = DefaultThresholds
	}
	s.gen.Store(&generation{Config: c})
	// The unconfigured types kept under the cap were chosen against the old
	// configured ones: the next full read chooses again.
	s.mu.Lock()
	s.otherTypes = nil
	s.mu.Unlock()
}

// config returns the Config in force.
func (s *Service) config() *generation { return s.gen.Load() }

// MetricTypes returns the known metric types.
func (s *Service) MetricTypes() []usage.MetricType { return s.config().MetricTypes }

// configuredTypes returns the configured metric type names as a set.
func configuredTypes(mts []usage.MetricType) map[string]bool {
	names := make(map[string]bool, len(mts))
	for _, mt := range mts {
		names[mt.Name] = true
	}
	return names
}

// Defaults returns the default limits.
func (s *Service) Defaults() plans.Limits { return s.config().Defaults }

// report reads usage and plans concurrently and joins them. It always
// returns a Report: a source that failed is described in it, never hidden.
// Only read calls it: every full read goes through the shared read.
func (s *Service) report(ctx context.Context, g *generation) *Report {
	now := s.now()
	r := &Report{At: now, Period: period.At(now, s.loc)}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		r.Usage, r.UsageErr = s.store.ReadUsage(ctx, s.pattern, r.Period.ID)
		r.UsageDuration = time.Since(start)
		if r.UsageErr != nil {
			r.Usage = nil
			return
		}
		others := r.Usage.CapMetricTypes(g.MetricTypes, s.maxTypes)
		s.mu.Lock()
		s.otherTypes = others
		s.mu.Unlock()
	}()
	plansCtx, cancel := plansContext(ctx)
	r.Plans = s.loadPlans(plansCtx, g, now)
	cancel()
	wg.Wait()

	_, span := tracing.Start(ctx, "billing join")
	s.mu.Lock()
	prev := s.joined
	if s.joinedGen != g {
		prev = nil // other defaults
	}
	s.mu.Unlock()
	r.join(g.Defaults, g.Thresholds, prev)
	if r.Usage != nil {
		// The statuses hold each tenant's counters: the snapshot's map of
		// every tenant goes back to its reader (the track mode's mirror
		// then changes it in place instead of copying it).
		r.Usage.Release()
	}
	if r.UsageUp() {
		s.mu.Lock()
		s.joined, s.joinedGen = r, g
		s.mu.Unlock()
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("billing.tenants", len(r.Tenants)))
	}
	span.End()
	return r
}

// loadPlans reads the plans source, or falls back to the last catalog read.
func (s *Service) loadPlans(ctx context.Context, g *generation, now time.Time) PlansState {
	if g.Plans == nil {
		return PlansState{}
	}
	st := PlansState{Configured: true, Source: g.PlansName}
	ctx, span := tracing.Start(ctx, "plans load")
	start := time.Now()
	cat, err := g.Plans.Load(ctx)
	st.Duration = time.Since(start)
	if span.IsRecording() {
		// The source's name, never its DSN or file path.
		span.SetAttributes(attribute.String("plans.source", g.PlansName))
		if cat != nil {
			span.SetAttributes(attribute.Int("plans.count", len(cat.Plans)), attribute.Int("plans.tenants", len(cat.Tenants)))
		}
	}
	tracing.End(span, err)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.config() != g {
		// Reloaded meanwhile: this read's catalog is the old source's, and
		// must not become the fallback of the new one's reads.
		if err == nil {
			st.Up, st.Catalog, st.LoadedAt = true, cat, now
		} else {
			st.Err, st.Catalog, st.LoadedAt = err, s.catalog, s.catalogAt
		}
		return st
	}
	// A read its caller abandoned (every scrape waiting on it left) says
	// nothing about the source: the last finished read's outcome stands.
	if !errors.Is(err, context.Canceled) {
		s.plansErr = err
	}
	if err == nil {
		s.catalog, s.catalogAt = cat, now
		st.Up = true
		s.plansLog.observe(nil, "source", g.PlansName)
	} else {
		st.Err = err
		if s.catalog == nil {
			s.plansLog.observe(err, "source", g.PlansName,
				"consequence", "plans source has never been read: no limits or percentages are exported until it is")
		} else {
			s.plansLog.observe(err, "source", g.PlansName,
				"consequence", "plans source unreachable: serving the last plans read", "age", now.Sub(s.catalogAt).Round(time.Second))
		}
	}
	st.Catalog, st.LoadedAt = s.catalog, s.catalogAt
	return st
}

// lastPlans is the plans state the last read of the source left, without
// reading it: the last read's outcome, so that a stale catalog is reported
// stale even when only scrapes (not this caller) have tried the source.
func (s *Service) lastPlans(g *generation) PlansState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return PlansState{Configured: g.Plans != nil, Source: g.PlansName, Catalog: s.catalog, LoadedAt: s.catalogAt,
		Up: s.catalog != nil && s.plansErr == nil, Err: s.plansErr}
}

// unread returns the Read of a read that did not finish in time (err says
// why): no usage, no INFO and no tenants, the plans as the last read left
// them and the current period. A scrape cut by its deadline still states
// its sources' health with it, so that alerts on that health (and on the
// period) do not see a gap.
func (s *Service) unread(g *generation, err error) *Read {
	now := s.now()
	return &Read{
		gen:    g,
		Report: &Report{At: now, Period: period.At(now, s.loc), UsageErr: err, Plans: s.lastPlans(g)},
		Info:   Info{Err: err},
	}
}

// ErrUnknownTenant is returned by Tenant for a tenant that has no usage key
// this period and no row in the plans source.
var ErrUnknownTenant = errors.New("unknown tenant")

// ErrUsageUnavailable wraps a failed usage read.
var ErrUsageUnavailable = errors.New("usage state unavailable")

// Tenant reads one tenant's usage key and joins it with the last catalog
// read: no scan and no plans query per call. The catalog is refreshed by
// every full read and, when none has been read yet, here. Whether that
// catalog is stale is what the last plans read found, whoever made it.
func (s *Service) Tenant(ctx context.Context, tenantID string) (*TenantReport, error) {
	if err := usage.ValidateID(usage.TenantID, tenantID); err != nil {
		return nil, err
	}
	g := s.config()
	now := s.now()
	p := period.At(now, s.loc)
	counters, found, _, err := s.store.ReadTenant(ctx, s.pattern.Key(tenantID, p.ID))
	if err != nil {
		if ctx.Err() == nil {
			s.usageLog.observe(err) // a failure only: one key read says little of a full read
		}
		return nil, fmt.Errorf("%w: %w", ErrUsageUnavailable, err)
	}
	s.mu.Lock()
	others := s.otherTypes
	s.mu.Unlock()
	if s.maxTypes > 0 && counters != nil {
		one := &usage.Snapshot{Tenants: map[string]usage.Counters{tenantID: counters}, Skipped: map[usage.Reason]int{}}
		if others == nil { // no full read yet: this hash alone decides
			one.CapMetricTypes(g.MetricTypes, s.maxTypes)
			counters = one.Tenants[tenantID]
		} else {
			counters = usage.KeepMetricTypes(counters, configuredTypes(g.MetricTypes), others, one.Skipped)
		}
	}
	plansState := s.lastPlans(g)
	cat := plansState.Catalog
	if g.Plans != nil && cat == nil {
		plansState = s.loadPlans(ctx, g, now)
		cat = plansState.Catalog
	}
	planID, inCatalog := "", false
	if cat != nil {
		planID, inCatalog = cat.Tenants[tenantID]
	}
	if !found && !inCatalog {
		return nil, ErrUnknownTenant
	}
	ix := newLimitIndex(plansState, g.Defaults)
	st := TenantStatus{ID: tenantID, Usage: counters, Terms: ix.termsOf(planID, map[string]*Terms{})}
	return &TenantReport{At: now, Period: p, Status: st, Plans: plansState}, nil
}
