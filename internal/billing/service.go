// Package billing joins usage, INFO and plan limits; see ARCHITECTURE.md.
package billing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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

// Store is the Redis side.
type Store interface {
	UsageReader
	InfoReader
}

// UsageReader reads usage hashes.
type UsageReader interface {
	ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error)
	ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error)
}

// DefaultThresholds are the OverThreshold percentages.
var DefaultThresholds = []float64{50, 80, 90, 100}

// Config is what a reload replaces.
type Config struct {
	Plans       plans.Source // nil: defaults for all
	PlansName   string
	Defaults    plans.Limits
	MetricTypes []usage.MetricType // nil: usage.DefaultMetricTypes
	Thresholds  []float64          // nil: DefaultThresholds
}

type generation struct {
	Config
	group sharedread.Group[*Read]
	seq   uint64
}

// Service reads and joins, concurrently.
type Service struct {
	store     Store
	pattern   usage.KeyPattern
	loc       *time.Location
	now       func() time.Time
	maxTypes  int
	maxRead   time.Duration
	freshRead bool
	logger    *slog.Logger

	refreshEvery time.Duration
	kick         chan struct{}
	stopRefresh  context.CancelFunc
	refreshDone  chan struct{}

	initial Config
	gen     atomic.Pointer[generation]
	gens    atomic.Uint64

	mu         sync.Mutex
	catalog    *plans.Catalog
	catalogAt  time.Time
	catalogSeq uint64
	plansErr   error
	plansTook  time.Duration
	changed    []string
	refreshed  uint64          // generation.seq of the last refresh
	refreshes  chan struct{}   // closed by each refresh
	otherTypes map[string]bool // the last full read's unconfigured types
	joined     *Report         // the last join
	joinedGen  *generation

	maxAge   time.Duration
	lastRead atomic.Pointer[Read]

	usageLog, infoLog, plansLog failureLog
}

// Option configures a Service.
type Option func(*Service)

// WithConfig sets the initial Config.
func WithConfig(c Config) Option { return func(s *Service) { s.initial = c } }

// WithKeyPattern sets the key pattern.
func WithKeyPattern(p usage.KeyPattern) Option { return func(s *Service) { s.pattern = p } }

// WithLocation sets the time zone.
func WithLocation(loc *time.Location) Option { return func(s *Service) { s.loc = loc } }

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithMaxMetricTypes caps the metric types; 0: no cap.
func WithMaxMetricTypes(n int) Option { return func(s *Service) { s.maxTypes = max(n, 0) } }

// WithMaxReadTime bounds each read; 0: none.
func WithMaxReadTime(d time.Duration) Option { return func(s *Service) { s.maxRead = max(d, 0) } }

// WithFreshReads makes reads start after their callers.
func WithFreshReads() Option { return func(s *Service) { s.freshRead = true } }

// WithMaxAge sets how long Recent reuses reads.
func WithMaxAge(d time.Duration) Option { return func(s *Service) { s.maxAge = max(d, 0) } }

// WithPlansRefresh sets the background plans refresh; 0: per read.
func WithPlansRefresh(d time.Duration) Option { return func(s *Service) { s.refreshEvery = max(d, 0) } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.logger = l } }

// New returns a Service.
func New(store Store, opts ...Option) *Service {
	s := &Service{
		store:   store,
		pattern: usage.MustParseKeyPattern(usage.DefaultKeyPattern),
		loc:     time.UTC,
		now:     time.Now,
		logger:  slog.New(slog.DiscardHandler),
		maxAge:  DefaultMaxAge,
	}
	for _, o := range opts {
		o(s)
	}
	s.usageLog = failureLog{logger: s.logger, what: "reading usage from Redis"}
	s.infoLog = failureLog{logger: s.logger, what: "reading Redis INFO (the memory, connection and replication gauges are absent meanwhile)"}
	s.plansLog = failureLog{logger: s.logger, what: "reading the plans source"}
	s.Reconfigure(s.initial)
	if s.refreshEvery > 0 {
		ctx, stop := context.WithCancel(context.Background())
		s.kick, s.stopRefresh, s.refreshDone = make(chan struct{}, 1), stop, make(chan struct{})
		s.refreshes = make(chan struct{})
		go s.refreshPlans(ctx)
	}
	return s
}

// Close stops the plans refresher.
func (s *Service) Close() {
	if s.stopRefresh != nil {
		s.stopRefresh()
		<-s.refreshDone
	}
}

// refreshPlans loads now, periodically, and on each Reconfigure.
func (s *Service) refreshPlans(ctx context.Context) {
	defer close(s.refreshDone)
	timeout := cmp.Or(s.maxRead, s.refreshEvery)
	timer := time.NewTimer(s.refreshEvery)
	defer timer.Stop()
	for {
		g := s.config()
		lctx, cancel := context.WithTimeout(ctx, timeout)
		s.loadPlans(lctx, g, s.now())
		cancel()
		s.mu.Lock()
		s.refreshed = g.seq
		close(s.refreshes)
		s.refreshes = make(chan struct{})
		s.mu.Unlock()
		timer.Reset(s.refreshEvery)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}

// refreshedPlans waits for a refresh under g or later, or ctx.
func (s *Service) refreshedPlans(ctx context.Context, g *generation) PlansState {
	for {
		s.mu.Lock()
		done, next := s.refreshed >= g.seq, s.refreshes
		s.mu.Unlock()
		if done {
			return s.lastPlans(g)
		}
		select {
		case <-next:
		case <-ctx.Done():
			st := s.lastPlans(g)
			st.Up, st.Err = false, fmt.Errorf("waiting for the plans read: %w", context.Cause(ctx))
			return st
		}
	}
}

// Reconfigure replaces the Config; older reads are not reused.
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
	s.gen.Store(&generation{Config: c, group: sharedread.Group[*Read]{MaxTime: s.maxRead, Fresh: s.freshRead},
		seq: s.gens.Add(1)})
	s.mu.Lock()
	s.otherTypes = nil
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Service) config() *generation { return s.gen.Load() }

// MetricTypes returns the metric types.
func (s *Service) MetricTypes() []usage.MetricType { return s.config().MetricTypes }

// Defaults returns the default limits.
func (s *Service) Defaults() plans.Limits { return s.config().Defaults }

// LimitTypes returns the metric types rep's plans or the defaults limit and
// those configured, sorted.
func (s *Service) LimitTypes(rep *Report) []string {
	set := map[string]int64{} // the keys
	maps.Copy(set, s.Defaults())
	if cat := rep.Plans.Catalog; cat != nil {
		for _, p := range cat.Plans {
			maps.Copy(set, p.Limits)
		}
	}
	for _, mt := range s.MetricTypes() {
		set[mt.Name] = 0
	}
	return slices.Sorted(maps.Keys(set))
}

func (s *Service) report(ctx context.Context, g *generation, due time.Time) *Report {
	now := s.now()
	r := &Report{At: now, Period: period.At(now, s.loc), monthly: monthlyTypes(g.MetricTypes)}

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
		r.others = r.Usage.CapMetricTypes(g.MetricTypes, s.maxTypes, nil)
		s.mu.Lock()
		s.otherTypes = r.others
		s.mu.Unlock()
	}()
	plansCtx, cancel := plansContext(ctx, due)
	if s.refreshEvery > 0 {
		r.Plans = s.refreshedPlans(plansCtx, g)
	} else {
		r.Plans = s.loadPlans(plansCtx, g, now)
	}
	cancel()
	wg.Wait()

	_, span := tracing.Start(ctx, "billing join")
	s.mu.Lock()
	prev := s.joined
	if s.joinedGen != g {
		prev = nil
	}
	s.mu.Unlock()
	r.join(g.Defaults, g.Thresholds, prev)
	if r.Usage != nil {
		r.Usage.Release()
	}
	if r.UsageUp() {
		s.mu.Lock()
		s.joined, s.joinedGen = r, g
		s.mu.Unlock()
	}
	span.SetAttributes(attribute.Int("billing.tenants", r.Tenants.Len()))
	span.End()
	return r
}

// plansBudget is the plans source's share of a read's time.
const plansBudget = 0.8

func plansContext(ctx context.Context, due time.Time) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && (due.IsZero() || dl.Before(due)) {
		due = dl
	}
	if due.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(float64(time.Until(due))*plansBudget))
}

func (s *Service) loadPlans(ctx context.Context, g *generation, now time.Time) PlansState {
	if g.Plans == nil {
		return PlansState{}
	}
	st := PlansState{Configured: true, Source: g.PlansName}
	ctx, span := tracing.Start(ctx, "plans load")
	start := time.Now()
	cat, err := g.Plans.Load(ctx)
	st.Duration = time.Since(start)
	span.SetAttributes(attribute.String("plans.source", g.PlansName))
	if cat != nil {
		span.SetAttributes(attribute.Int("plans.count", len(cat.Plans)), attribute.Int("plans.tenants", cat.Len()))
	}
	tracing.End(span, err)

	st.Up, st.Err = err == nil, err
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.config() != g && err == nil: // reloaded meanwhile
		st.Catalog, st.LoadedAt = cat, now
		return st
	case s.config() != g:
	case err == nil:
		// An unchanged catalog is kept, so joins see no change; the first
		// one changes every tenant, and joins with none know it.
		var changed []string
		if s.catalog != nil {
			changed = plans.Diff(s.catalog, cat)
		}
		if len(changed) > 0 || s.catalog == nil || !plans.SamePlans(s.catalog, cat) {
			s.catalog, s.changed, s.catalogSeq = cat, changed, s.catalogSeq+1
		}
		s.plansErr, s.catalogAt, s.plansTook = nil, now, st.Duration
		s.plansLog.observe(nil, "source", g.PlansName)
	default:
		// Abandoned reads say nothing of the source.
		if !errors.Is(err, context.Canceled) {
			s.plansErr, s.plansTook = err, st.Duration
		}
		consequence := []any{"consequence", "plans source has never been read: no limits or percentages are exported until it is"}
		if s.catalog != nil {
			consequence = []any{"consequence", "plans source unreachable: serving the last plans read", "age", now.Sub(s.catalogAt).Round(time.Second)}
		}
		s.plansLog.observe(err, append([]any{"source", g.PlansName}, consequence...)...)
	}
	st.Catalog, st.LoadedAt, st.Seq, st.Changed = s.catalog, s.catalogAt, s.catalogSeq, s.changed
	return st
}

func (s *Service) lastPlans(g *generation) PlansState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return PlansState{Configured: g.Plans != nil, Source: g.PlansName, Catalog: s.catalog, LoadedAt: s.catalogAt,
		Up: s.catalog != nil && s.plansErr == nil, Err: s.plansErr, Duration: s.plansTook, Seq: s.catalogSeq, Changed: s.changed}
}

// unread keeps the plans state and period, so alerts see no gap.
func (s *Service) unread(g *generation, err error) *Read {
	now := s.now()
	return &Read{
		gen: g,
		Report: &Report{At: now, Period: period.At(now, s.loc), UsageErr: err, Plans: s.lastPlans(g),
			monthly: monthlyTypes(g.MetricTypes)},
		Info: Info{Err: err},
	}
}

// ErrUnknownTenant means the tenant has no usage and no plan.
var ErrUnknownTenant = errors.New("unknown tenant")

// ErrUsageUnavailable wraps a failed usage read.
var ErrUsageUnavailable = errors.New("usage state unavailable")

// Tenant joins one tenant with the last catalog.
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
			s.usageLog.observe(err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUsageUnavailable, err)
	}
	s.mu.Lock()
	others := s.otherTypes
	s.mu.Unlock()
	if s.maxTypes > 0 && counters != nil {
		one := &usage.Snapshot{Tenants: usage.TenantMap{tenantID: counters}, Skipped: map[usage.Reason]int{}}
		one.CapMetricTypes(g.MetricTypes, s.maxTypes, others)
		counters = one.Counters(tenantID)
	}
	var plansState PlansState
	if s.refreshEvery > 0 {
		plansState = s.refreshedPlans(ctx, g)
	} else if plansState = s.lastPlans(g); g.Plans != nil && plansState.Catalog == nil {
		plansState = s.loadPlans(ctx, g, now)
	}
	row, inCatalog := plansState.Catalog.Tenant(tenantID)
	if !found && !inCatalog {
		return nil, ErrUnknownTenant
	}
	ix := newLimitIndex(plansState, g.Defaults)
	st := TenantStatus{ID: tenantID, Usage: counters, Terms: ix.termsOf(row.Plan, map[string]*Terms{})}
	return &TenantReport{At: now, Period: p, Status: st, Name: row.Name, Plans: plansState, monthly: monthlyTypes(g.MetricTypes)}, nil
}
