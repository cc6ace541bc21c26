package billing

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/plans"
)

// countingPlans counts its Loads and returns its catalog, or err when set.
type countingPlans struct {
	mu    sync.Mutex
	cat   *plans.Catalog
	err   error
	loads int
}

func (c *countingPlans) Load(context.Context) (*plans.Catalog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loads++
	if c.err != nil {
		return nil, c.err
	}
	return c.cat, nil
}

func (c *countingPlans) set(cat *plans.Catalog, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cat, c.err = cat, err
}

func (c *countingPlans) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func refreshingService(t *testing.T, src plans.Source, every time.Duration, clock *testClock) *Service {
	t.Helper()
	svc := New(usageState(), WithClock(clock.now), WithPlansRefresh(every),
		WithConfig(Config{Plans: src, PlansName: "postgres", Defaults: defaults}))
	t.Cleanup(svc.Close)
	return svc
}

func mustRead(t *testing.T, svc *Service) *Report {
	t.Helper()
	r, err := svc.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r.Report
}

// pollRead reads until cond holds, for at most 10s.
func pollRead(t *testing.T, svc *Service, what string, cond func(*Report) bool) *Report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := mustRead(t, svc)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("not after 10s: %s; plans %+v", what, r.Plans)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func starterLimit(c *plans.Catalog, messages int64) *plans.Catalog {
	c.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": messages}}
	return c
}

// TestPlansRefresh: with a refresh interval, reads and the tenant API join
// the last catalog without loading the plans; the start and a Reconfigure
// load at once.
func TestPlansRefresh(t *testing.T) {
	src := &countingPlans{cat: catalog()}
	svc := refreshingService(t, src, time.Hour, &testClock{t: now})

	first := mustRead(t, svc)
	if !first.Plans.Up || tenant(t, first, "1").PlanID != "1" {
		t.Fatalf("first read: plans %+v; want the first refresh's catalog", first.Plans)
	}
	if first.Plans.Seq != 1 || first.Plans.Changed != nil {
		t.Errorf("first refresh: seq %d, changed %v; want 1 and no list (every tenant)", first.Plans.Seq, first.Plans.Changed)
	}
	src.set(starterLimit(catalog(), 1), nil)
	for range 5 {
		r := mustRead(t, svc)
		if l := tenant(t, r, "1").Limits["messages"]; l != 5000 {
			t.Fatalf("read between refreshes has limit %d, want the last catalog's 5000", l)
		}
		if _, err := svc.Tenant(context.Background(), "1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.count(); n != 1 {
		t.Errorf("%d loads after 5 reads and 5 tenant reads within one interval, want 1", n)
	}

	svc.Reconfigure(Config{Plans: src, PlansName: "postgres", Defaults: defaults})
	r := mustRead(t, svc)
	if l := tenant(t, r, "1").Limits["messages"]; l != 1 {
		t.Errorf("first read after Reconfigure has limit %d, want the new 1", l)
	}
	if !slices.Equal(r.Plans.Changed, []string{"1", "2", "5"}) {
		t.Errorf("changed = %v, want plan 1's tenants", r.Plans.Changed)
	}
	if n := src.count(); n != 2 {
		t.Errorf("%d loads after a Reconfigure, want 2", n)
	}
}

// TestNoPlansRefreshLoadsPerRead: interval 0 loads the plans in each read.
func TestNoPlansRefreshLoadsPerRead(t *testing.T) {
	src := &countingPlans{cat: catalog()}
	svc := refreshingService(t, src, 0, &testClock{t: now})
	for i := 1; i <= 3; i++ {
		mustRead(t, svc)
		if n := src.count(); n != i {
			t.Fatalf("%d loads after %d reads, want %d", n, i, i)
		}
	}
}

// TestPlansRefreshFails: a failed refresh keeps the last catalog, reports
// the plans down with a growing age, and no tenant changes its terms; the
// next successful refresh brings the new catalog.
func TestPlansRefreshFails(t *testing.T) {
	src := &countingPlans{cat: catalog()}
	clock := &testClock{t: now}
	svc := refreshingService(t, src, 5*time.Millisecond, clock)
	fresh := mustRead(t, svc)

	src.set(nil, errors.New("connection refused"))
	clock.add(10 * time.Minute)
	stale := pollRead(t, svc, "plans down", func(r *Report) bool { return !r.Plans.Up })
	if !stale.Plans.Stale() || stale.Plans.Err == nil || stale.Plans.Seq != fresh.Plans.Seq || stale.Plans.Catalog != fresh.Plans.Catalog {
		t.Fatalf("plans state = %+v, want stale, with the catalog of seq %d", stale.Plans, fresh.Plans.Seq)
	}
	if age := stale.At.Sub(stale.Plans.LoadedAt); age != 10*time.Minute {
		t.Errorf("plans age = %v, want 10m", age)
	}
	clock.add(time.Minute)
	if r := mustRead(t, svc); r.At.Sub(r.Plans.LoadedAt) != 11*time.Minute {
		t.Errorf("plans age = %v a minute later, want 11m", r.At.Sub(r.Plans.LoadedAt))
	}
	for i := range fresh.Tenants.Len() {
		a, b := *fresh.Tenants.At(i), *stale.Tenants.At(i)
		if a.ID != b.ID || a.PlanID != b.PlanID || a.UsingDefaults != b.UsingDefaults || !maps.Equal(a.Limits, b.Limits) {
			t.Errorf("tenant %s changed while plans were down: %+v -> %+v", a.ID, a, b)
		}
	}
	if tr, err := svc.Tenant(context.Background(), "5"); err != nil || tr.Status.PlanID != "1" || tr.Status.UsingDefaults {
		t.Errorf("tenant 5 while plans are down: %+v, %v; want plan 1", tr, err)
	}

	src.set(starterLimit(catalog(), 1), nil)
	r := pollRead(t, svc, "plans up again", func(r *Report) bool { return r.Plans.Up })
	if l := tenant(t, r, "5").Limits["messages"]; l != 1 || r.Plans.LoadedAt != clock.now() {
		t.Errorf("after recovery: limit %d, loaded at %v; want 1, now", l, r.Plans.LoadedAt)
	}
}

// TestReadWaitsForFirstRefresh: a read waits for the first refresh within
// its plans budget; past it, the plans are reported as not read, and usage
// is still reported.
func TestReadWaitsForFirstRefresh(t *testing.T) {
	src := &blockingPlans{started: make(chan struct{}, 2), release: make(chan struct{})}
	svc := refreshingService(t, src, time.Hour, &testClock{t: now})
	<-src.started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r, err := svc.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep := r.Report; rep.Plans.Up || rep.Plans.Catalog != nil || rep.Plans.Err == nil || !rep.UsageUp() {
		t.Fatalf("read before the first refresh: plans %+v, usage up %v; want not read, usage up", rep.Plans, rep.UsageUp())
	}
	close(src.release)
	if rep := mustRead(t, svc); !rep.Plans.Up || rep.Plans.Catalog == nil {
		t.Errorf("read after the first refresh: plans %+v", rep.Plans)
	}
}
