package api

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

func TestPlansEndpoint(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		e := newEnv(t, envConfig{plans: plansPostgres})
		e.seedPlansIssue()
		p := e.plans()
		if deref(p.Source) != "postgres" || p.PlansStale || p.PlansAgeSeconds == nil || !p.TenantCountsAvailable {
			t.Errorf("header %+v", p)
		}
		if len(p.Plans) != 1 {
			t.Fatalf("plans %+v", p.Plans)
		}
		pl := p.Plans[0]
		if pl.ID != "1" || pl.Name != "starter" || !reflect.DeepEqual(pl.Limits, map[string]int64{"messages": 5000}) || deref(pl.Tenants) != 2 {
			t.Errorf("plan %+v (tenants %v)", pl, deref(pl.Tenants))
		}
		if !reflect.DeepEqual(p.Defaults.Limits, map[string]int64(plansIssueDefaults)) || deref(p.Defaults.Tenants) != 1 {
			t.Errorf("defaults %+v (tenants %v)", p.Defaults, deref(p.Defaults.Tenants))
		}
	})
	t.Run("a plan row that vanished", func(t *testing.T) {
		// Plan 3 is deleted while tenant 4 still points at it (no foreign
		// key): listed with its tenant and null limits, as
		// billing_tenants_per_plan{plan_id="3"} counts it.
		e := newEnv(t, envConfig{plans: plansPostgres, plansSQL: plansIssueSQL + `
ALTER TABLE tenants DROP CONSTRAINT tenants_plan_id_fkey;
INSERT INTO tenants (id, name, plan_id) VALUES (4, 'four', 3);`})
		e.seedPlansIssue()
		e.redis.HSet("usage:4:202611", "messages", 7)
		p := e.plans()
		if len(p.Plans) != 2 {
			t.Fatalf("plans %+v", p.Plans)
		}
		if pl := p.Plans[0]; pl.ID != "1" || pl.Limits == nil || deref(pl.Tenants) != 2 {
			t.Errorf("plan 1: %+v (tenants %v)", pl, deref(pl.Tenants))
		}
		if pl := p.Plans[1]; pl.ID != "3" || pl.Name != "" || pl.Limits != nil || deref(pl.Tenants) != 1 {
			t.Errorf("vanished plan 3: %+v (tenants %v), want no name, null limits, 1 tenant", pl, deref(pl.Tenants))
		}
		if deref(p.Defaults.Tenants) != 1 {
			t.Errorf("defaults: %v tenants, want 1 (tenant 3; tenant 4 stays on plan 3)", deref(p.Defaults.Tenants))
		}
		body := string(e.get("/api/v1/plans").Body)
		if !strings.Contains(body, `"id":"3","name":"","limits":null`) {
			t.Errorf("plan 3 without null limits in %s", body)
		}
	})
	t.Run("no plans source", func(t *testing.T) {
		e := newEnv(t, envConfig{})
		e.redis.HSet("usage:a:202611", "messages", 1)
		e.redis.HSet("usage:b:202611", "users", 1)
		p := e.plans()
		if p.Source != nil || p.PlansStale || p.PlansAgeSeconds != nil || len(p.Plans) != 0 || deref(p.Defaults.Tenants) != 2 {
			t.Errorf("got %+v", p)
		}
	})
}

// TestPostgresDown: after one read, PostgreSQL stops; the API keeps the
// same limits, says they are stale, and never flips tenants to defaults.
func TestPostgresDown(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres, ticking: true, svcOpts: []billing.Option{billing.WithMaxAge(0)}})
	e.seedPlansIssue()
	if p := e.plans(); p.PlansStale {
		t.Fatal("stale with PostgreSQL up")
	}
	if u := e.usage("1"); u.PlansStale {
		t.Fatal("usage stale with PostgreSQL up")
	}

	e.pg.Stop()
	time.Sleep(1100 * time.Millisecond) // let the plans age pass a second

	p := e.plans()
	if !p.PlansStale || p.PlansAgeSeconds == nil || *p.PlansAgeSeconds < 1 {
		t.Errorf("plans: stale %v age %v with PostgreSQL stopped", p.PlansStale, deref(p.PlansAgeSeconds))
	}
	if len(p.Plans) != 1 || p.Plans[0].Limits["messages"] != 5000 || deref(p.Plans[0].Tenants) != 2 || deref(p.Defaults.Tenants) != 1 {
		t.Errorf("plans changed with PostgreSQL stopped: %+v", p)
	}
	l := e.list("?min_percentage=80")
	if !l.PlansStale || !reflect.DeepEqual(l.ids(), []string{"1"}) || *l.Tenants[0].Percentage != 85 || *l.Tenants[0].Limit != 5000 {
		t.Errorf("list with PostgreSQL stopped: stale %v %+v", l.PlansStale, l.Tenants)
	}
	u := e.usage("1")
	m := u.Metrics["messages"]
	if !u.PlansStale || *m.Limit != 5000 || *m.Percentage != 85 || *m.Remaining != 750 ||
		u.Plan == nil || u.Plan.Name != "starter" || deref(u.UsingDefaults) != false || u.PlansAgeSeconds == nil || *u.PlansAgeSeconds < 1 {
		t.Errorf("usage with PostgreSQL stopped: stale %v plan %v defaults %v %s", u.PlansStale, u.Plan, deref(u.UsingDefaults), dump(u.Metrics))
	}
	if u := e.usage("3"); deref(u.UsingDefaults) != true || *u.Metrics["messages"].Limit != 1000 {
		t.Errorf("tenant 3 with PostgreSQL stopped: %+v", u)
	}

	e.pg.Start()
	if p := e.plans(); p.PlansStale || *p.PlansAgeSeconds >= 1 {
		t.Errorf("after restart: stale %v age %v", p.PlansStale, deref(p.PlansAgeSeconds))
	}
	if u := e.usage("1"); u.PlansStale {
		t.Error("usage still stale after PostgreSQL came back")
	}
}

// TestRedisDown: no figures rather than stale ones, 503 problems, and
// recovery without a restart.
func TestRedisDown(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres, svcOpts: []billing.Option{billing.WithMaxAge(0)}})
	e.seedPlansIssue()
	e.usage("1")
	e.list("")

	e.redis.Stop()
	for _, path := range []string{"/api/v1/tenants/1/usage", "/api/v1/tenants", "/api/v1/tenants?min_percentage=80"} {
		r := e.get(path)
		r.wantStatus(t, http.StatusServiceUnavailable)
		if p := r.problem(t); p.Type != ProblemUsageUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %+v, Retry-After %q", path, p, r.Header.Get("Retry-After"))
		}
	}
	// The plans are still known; their tenant counts are not.
	p := e.plans()
	if p.TenantCountsAvailable || p.Defaults.Tenants != nil || len(p.Plans) != 1 || p.Plans[0].Tenants != nil || p.Plans[0].Limits["messages"] != 5000 {
		t.Errorf("plans with Redis down: %+v", p)
	}

	e.redis.Start() // empty dataset
	e.seedPlansIssue()
	if u := e.usage("1"); *u.Metrics["messages"].Percentage != 85 {
		t.Errorf("after recovery: %s", dump(u.Metrics))
	}
	if l := e.list("?min_percentage=80"); !reflect.DeepEqual(l.ids(), []string{"1"}) {
		t.Errorf("after recovery: %v", l.ids())
	}
}

// TestLimitsNeverRead: with a plans source that has never answered, no
// limit or percentage is stated anywhere.
func TestLimitsNeverRead(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansNeverRead})
	e.seedPlansIssue()
	for _, path := range []string{"/api/v1/tenants", "/api/v1/plans"} {
		r := e.get(path)
		r.wantStatus(t, http.StatusServiceUnavailable)
		if p := r.problem(t); p.Type != ProblemLimitsUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %+v", path, p)
		}
	}
	u := e.usage("1")
	want := map[string]metricJSON{"messages": {Used: ptr[int64](4250), MonthlyReset: true, Projected: ptr[int64](8793)}}
	if u.LimitsKnown || u.Plan != nil || u.UsingDefaults != nil || u.PlansAgeSeconds != nil || u.PlansStale || !reflect.DeepEqual(u.Metrics, want) {
		t.Errorf("usage with limits unknown: %+v %s", u, dump(u.Metrics))
	}
	// Tenant 2 is known only from the plans, which nobody could read.
	e.get("/api/v1/tenants/2/usage").wantStatus(t, http.StatusNotFound)
}
