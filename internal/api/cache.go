package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/sharedread"
)

// failedMaxAge bounds how long a read that failed (Redis down) is reused:
// long enough that a burst of requests during an outage is one connection
// attempt, short enough that recovery shows at once.
const failedMaxAge = time.Second

// reportCache keeps the last full read (billing.Service.Report, a SCAN of
// the whole keyspace) for the endpoints that need every tenant, so that a
// burst of list requests costs Redis one read, not one per request.
// Concurrent refreshes share one read through a sharedread.Group.
type reportCache struct {
	service *billing.Service
	maxAge  time.Duration
	group   sharedread.Group[*snapshot]

	mu   sync.Mutex
	last *snapshot
}

// snapshot is one full read and what the list derives from it.
type snapshot struct {
	report *billing.Report
	// fetched is when the read completed, by this process's clock (the
	// report's own At follows the service's clock, which tests may fix).
	fetched time.Time

	mu       sync.Mutex
	rankings map[string][]ranked
}

// age is how old the data is.
func (s *snapshot) age() time.Duration { return time.Since(s.fetched) }

func (c *reportCache) fresh(s *snapshot) bool {
	if s == nil {
		return false
	}
	maxAge := c.maxAge
	if !s.report.UsageUp() {
		maxAge = min(maxAge, failedMaxAge)
	}
	return s.age() < maxAge
}

// get returns the cached read when young enough, else a new one, shared
// with every concurrent caller. The error is only ever ctx's.
func (c *reportCache) get(ctx context.Context) (*snapshot, error) {
	c.mu.Lock()
	s := c.last
	c.mu.Unlock()
	if c.fresh(s) {
		return s, nil
	}
	return c.group.Do(ctx, c.read)
}

func (c *reportCache) read(ctx context.Context) (*snapshot, error) {
	// A caller that found the cache stale may arrive just after another
	// read completed: reuse that one rather than reading again.
	c.mu.Lock()
	s := c.last
	c.mu.Unlock()
	if c.fresh(s) {
		return s, nil
	}
	r := c.service.Report(ctx)
	s = &snapshot{report: r, fetched: time.Now(), rankings: map[string][]ranked{}}
	if ctx.Err() == nil {
		// A read cut short because every caller left is not kept: its
		// failure says nothing about Redis.
		c.mu.Lock()
		c.last = s
		c.mu.Unlock()
	}
	return s, nil
}

// knownStale reports whether the last full read found the plans source
// down while serving the very catalog ps carries. billing.Service.Tenant
// reports its plans as up whenever a catalog exists, so this is how a
// tenant's usage learns that the catalog it was joined with is stale.
func (c *reportCache) knownStale(ps billing.PlansState) bool {
	c.mu.Lock()
	s := c.last
	c.mu.Unlock()
	if s == nil || ps.Catalog == nil {
		return false
	}
	lp := s.report.Plans
	return lp.Stale() && lp.LoadedAt.Equal(ps.LoadedAt)
}

// ranked is a tenant of the report with a percentage of one limit type.
type ranked struct {
	idx int // into report.Tenants
	pct float64
}

// ranking returns the tenants that have a percentage of limitType, highest
// first, ties by tenant id (byte order). It is computed once per snapshot
// and limit type: paging through a long list sorts once.
func (s *snapshot) ranking(limitType string) []ranked {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rk, ok := s.rankings[limitType]; ok {
		return rk
	}
	tenants := s.report.Tenants
	var rk []ranked
	for i := range tenants {
		if pct, ok := tenants[i].Percentage(limitType); ok {
			rk = append(rk, ranked{idx: i, pct: pct})
		}
	}
	slices.SortFunc(rk, func(a, b ranked) int {
		switch {
		case a.pct > b.pct:
			return -1
		case a.pct < b.pct:
			return 1
		}
		return strings.Compare(tenants[a.idx].ID, tenants[b.idx].ID)
	})
	// Limit types are checked against the plans before they get here, so
	// this map holds a handful of entries.
	s.rankings[limitType] = rk
	return rk
}

// recentReport returns the shared recent full read for the list and the
// plans, or answers 503 and returns false when none could be had in the
// request's time.
func (h *Handler) recentReport(w http.ResponseWriter, r *http.Request) (*snapshot, bool) {
	ctx, cancel := h.timeout(r)
	defer cancel()
	snap, err := h.cache.get(ctx)
	if err != nil {
		h.problem(w, r, errUsageUnavailable(err))
		return nil, false
	}
	return snap, true
}
