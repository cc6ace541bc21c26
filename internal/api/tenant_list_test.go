package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

func TestListTenantsPlansIssue(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres})
	e.seedPlansIssue()

	cases := []struct {
		query string
		ids   []string
		total int
	}{
		// Percentages: 1 → 85, 3 → 1, 2 → 0 (on starter, no usage key).
		{"", []string{"1", "3", "2"}, 3},
		{"?min_percentage=80", []string{"1"}, 1},
		{"?min_percentage=85", []string{"1"}, 1}, // at or above
		{"?min_percentage=85.01", []string{}, 0},
		{"?min_percentage=0.5", []string{"1", "3"}, 2},
		{"?limit_type=messages&min_percentage=80&limit=50", []string{"1"}, 1},
		{"?min_percentage=1000000", []string{}, 0},
		// Only tenant 3 (defaults) has a users, storage or sessions limit.
		{"?limit_type=users", []string{"3"}, 1},
		{"?limit_type=storage", []string{"3"}, 1},
		{"?limit_type=whatsappSessions&min_percentage=0", []string{"3"}, 1},
		{"?limit=2", []string{"1", "3"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			l := e.list(tc.query)
			if got := l.ids(); !reflect.DeepEqual(got, tc.ids) || l.Total != tc.total {
				t.Errorf("tenants %v total %d, want %v total %d", got, l.Total, tc.ids, tc.total)
			}
			if (l.NextCursor != nil) != (len(tc.ids) < tc.total) {
				t.Errorf("next_cursor %v with %d of %d", deref(l.NextCursor), len(tc.ids), tc.total)
			}
		})
	}

	t.Run("tenant 1's figures", func(t *testing.T) {
		l := e.list("?min_percentage=80")
		want := listItemJSON{TenantID: "1", Name: ptr("one"), UsagePath: "/api/v1/tenants/1/usage", Plan: &planJSON{"1", "starter"},
			LimitType: "messages", HighestPercentage: 85, metricJSON: metricJSON{
				Used: ptr[int64](4250), Limit: ptr[int64](5000), Remaining: ptr[int64](750), Exceeded: ptr(false), Reached: ptr(false),
				Band: ptr("near"), Percentage: ptr(85.0), MonthlyReset: true, Projected: ptr[int64](8793), ProjectedPercentage: ptr(175.86),
				ProjectedLimitDate: ptr("2026-11-18"),
			}}
		if len(l.Tenants) != 1 || !reflect.DeepEqual(l.Tenants[0], want) {
			t.Errorf("got %+v", l.Tenants)
		}
		if l.LimitType != "messages" || l.MinPercentage != 80 || l.Limit != 50 || l.PlansStale || l.PlansAgeSeconds == nil ||
			l.Period.ID != "202611" || l.GeneratedAt != "2026-11-15T12:00:00Z" || l.DataAgeSeconds < 0 || l.DataAgeSeconds > 15 {
			t.Errorf("list header %+v", l)
		}
	})
}

// TestListBands: several limit types at once, each tenant once by its most
// pressed limit, filtered by band, percentage range and projection.
func TestListBands(t *testing.T) {
	e := newEnv(t, envConfig{}) // defaults: 1000 messages, 2 users; 14.5 of 30 days gone
	for id, fields := range map[string][]any{
		"r": {"messages", 1000}, // reached
		"n": {"messages", 850},  // near, runs out on the 18th
		"p": {"messages", 600},  // projected: runs out on the 25th
		"s": {"users", 2},       // seats at the limit: near
		"o": {"users", 3},       // seats over: reached
		"l": {"messages", 100},
	} {
		e.redis.HSet("usage:"+id+":202611", fields...)
	}
	cases := []struct {
		query string
		ids   []string
	}{
		{"?limit_type=messages,users", []string{"o", "r", "s", "n", "p", "l"}},
		{"?limit_type=users&limit_type=messages&band=near", []string{"s", "n"}},
		{"?limit_type=users,messages&band=reached,projected", []string{"o", "r", "p"}},
		{"?projected_min_percentage=100", []string{"r", "n", "p"}},
		{"?max_percentage=99.9", []string{"n", "p", "l", "o", "s"}},
		{"?min_percentage=80&max_percentage=100", []string{"r", "n"}},
		{"?limit_type=users&band=projected", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			l := e.list(tc.query)
			if got := l.ids(); !reflect.DeepEqual(got, tc.ids) || l.Total != len(tc.ids) {
				t.Errorf("tenants %v total %d, want %v", got, l.Total, tc.ids)
			}
		})
	}
	t.Run("figures of the most pressed limit", func(t *testing.T) {
		l := e.list("?limit_type=messages,users")
		want := map[string]string{
			"o": "users reached true <nil>", "r": "messages reached true <nil>", "s": "users near false <nil>",
			"n": "messages near false 2026-11-18", "p": "messages projected false 2026-11-25", "l": "messages none false <nil>",
		}
		for _, it := range l.Tenants {
			date := "<nil>"
			if it.ProjectedLimitDate != nil {
				date = *it.ProjectedLimitDate
			}
			if got := fmt.Sprintf("%s %s %v %s", it.LimitType, deref(it.Band), deref(it.Reached), date); got != want[it.TenantID] {
				t.Errorf("tenant %s: %s, want %s", it.TenantID, got, want[it.TenantID])
			}
		}
	})
	t.Run("pages of a band filter", func(t *testing.T) {
		var got []string
		query := "?limit_type=messages,users&band=near,reached&limit=1"
		for range 10 {
			l := e.list(query)
			got = append(got, l.ids()...)
			if l.Total != 4 {
				t.Errorf("total %d, want 4", l.Total)
			}
			if l.NextCursor == nil {
				break
			}
			query = "?limit_type=users,messages&band=near,reached&limit=1&cursor=" + url.QueryEscape(*l.NextCursor)
		}
		if want := []string{"o", "r", "s", "n"}; !reflect.DeepEqual(got, want) {
			t.Errorf("pages gave %v, want %v", got, want)
		}
	})
}

func TestListPagination(t *testing.T) {
	e := newEnv(t, envConfig{})
	// 25 tenants on the defaults (messages limit 1000), with ties.
	want := []string{}
	for i := range 25 {
		id := fmt.Sprintf("t%02d", i)
		e.redis.HSet("usage:"+id+":202611", "messages", 1000-40*(i/2)) // pairs tie
		want = append(want, id)
	}
	e.redis.HSet("usage:nolimit:202611", "apiCalls", 1) // 0% of messages: listed last
	want = append(want, "nolimit")

	for _, limit := range []int{1, 2, 7, 26, 1000} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			query := fmt.Sprintf("?limit=%d", limit)
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("pagination does not end")
				}
				l := e.list(query)
				if l.Total != len(want) {
					t.Errorf("total %d, want %d", l.Total, len(want))
				}
				if len(l.Tenants) > limit {
					t.Fatalf("%d tenants on a page of %d", len(l.Tenants), limit)
				}
				got = append(got, l.ids()...)
				if l.NextCursor == nil {
					break
				}
				query = fmt.Sprintf("?limit=%d&cursor=%s", limit, url.QueryEscape(*l.NextCursor))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("pages gave %v, want %v", got, want)
			}
		})
	}

	t.Run("stable across a refresh", func(t *testing.T) {
		l := e.list("?limit=4")
		// A new tenant above the boundary does not shift the next page.
		e.redis.HSet("usage:a-new:202611", "messages", 999)
		e2 := New(billing.New(e.store, append(e.svcOpts, billing.WithMaxAge(0))...))
		srv := newAPIServer(t, e2)
		r := do(t, e.client, http.MethodGet, srv+"/api/v1/tenants?limit=4&cursor="+url.QueryEscape(*l.NextCursor))
		r.wantStatus(t, http.StatusOK)
		var next listJSON
		r.decode(t, &next)
		if got := next.ids(); !reflect.DeepEqual(got, want[4:8]) {
			t.Errorf("after a refresh the next page is %v, want %v", got, want[4:8])
		}
	})

	t.Run("cursor of another limit type", func(t *testing.T) {
		l := e.list("?limit=1")
		r := e.get("/api/v1/tenants?limit_type=users&cursor=" + url.QueryEscape(*l.NextCursor))
		r.wantStatus(t, http.StatusBadRequest)
		if p := r.problem(t); p.Parameter != "cursor" || !strings.Contains(p.Detail, "messages") {
			t.Errorf("problem %+v", p)
		}
	})
}

func TestListParameterErrors(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres})
	e.seedPlansIssue()
	forged := func(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }
	cases := []struct {
		query, param string
	}{
		{"?min_percentage=-1", "min_percentage"},
		{"?min_percentage=abc", "min_percentage"},
		{"?min_percentage=NaN", "min_percentage"},
		{"?min_percentage=Inf", "min_percentage"},
		{"?min_percentage=%2BInf", "min_percentage"},
		{"?min_percentage=1e3", "min_percentage"},
		{"?min_percentage=0x10", "min_percentage"},
		{"?min_percentage=80%25", "min_percentage"},
		{"?min_percentage=1000000.5", "min_percentage"},
		{"?min_percentage=99999999999", "min_percentage"},
		{"?min_percentage=", "min_percentage"},
		{"?min_percentage=%20", "min_percentage"},
		{"?min_percentage=80&min_percentage=90", "min_percentage"},
		{"?limit=0", "limit"},
		{"?limit=-5", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=99999999999999999999", "limit"},
		{"?limit=1.5", "limit"},
		{"?limit=ten", "limit"},
		{"?limit=", "limit"},
		{"?limit=1&limit=1", "limit"},
		{"?limit_type=", "limit_type"},
		{"?limit_type=mess%00ages", "limit_type"},
		{"?limit_type=" + strings.Repeat("m", 65), "limit_type"},
		{"?limit_type=apiCalls", "limit_type"}, // nothing limits it and it is not configured
		{"?limit_type=Messages", "limit_type"},
		{"?limit_type=messages,", "limit_type"},
		{"?limit_type=messages&limit_type=", "limit_type"},
		{"?limit_type=messages&limit_type=apiCalls", "limit_type"},
		{"?limit_type=" + strings.Repeat("users&limit_type=", 33) + "users", "limit_type"},
		{"?max_percentage=-1", "max_percentage"},
		{"?max_percentage=NaN", "max_percentage"},
		{"?min_percentage=90&max_percentage=80", "max_percentage"},
		{"?max_percentage=1&max_percentage=2", "max_percentage"},
		{"?projected_min_percentage=1e3", "projected_min_percentage"},
		{"?projected_min_percentage=", "projected_min_percentage"},
		{"?band=over", "band"},
		{"?band=near,", "band"},
		{"?band=none", "band"},
		{"?band=%3Cscript%3E", "band"},
		{"?cursor=" + forged(`{"v":2,"t":"messages","p":50,"b":9,"i":"1"}`), "cursor"},
		{"?limit_type=users&cursor=" + forged(`{"v":2,"t":"messages","p":50,"b":0,"i":"1"}`), "cursor"},
		{"?cursor=", "cursor"},
		{"?cursor=not-base64!", "cursor"},
		{"?cursor=" + forged(`{"v":1,"t":"messages","p":50,"i":"1","x":1}`), "cursor"},
		{"?cursor=" + forged(`{"v":1,"t":"messages","p":50,"i":"1"}`), "cursor"},
		{"?cursor=" + forged(`{"v":1,"t":"messages","p":-1,"i":"1"}`), "cursor"},
		{"?cursor=" + forged(`{"v":1,"t":"messages","p":50,"i":"1*"}`), "cursor"},
		{"?cursor=" + forged(`[]`), "cursor"},
		{"?foo=1", "foo"},
		{"?Limit=5", "Limit"},
		{"?min_percentage=80&tenant=1", "tenant"},
		{"?limit=%zz", "query"},
		{"?limit=5;limit_type=users", "query"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			r := e.get("/api/v1/tenants" + tc.query)
			r.wantStatus(t, http.StatusBadRequest)
			p := r.problem(t)
			if p.Type != ProblemInvalidParameter || p.Parameter != tc.param || p.Detail == "" {
				t.Errorf("problem %+v, want parameter %q", p, tc.param)
			}
		})
	}
	// The same discipline on the endpoints without parameters.
	for _, path := range []string{"/api/v1/plans?x=1", "/api/v1/openapi.yaml?format=json", "/api/v1/tenants/1/usage?period=202610"} {
		r := e.get(path)
		r.wantStatus(t, http.StatusBadRequest)
		if p := r.problem(t); !strings.Contains(p.Detail, "takes no query parameters") {
			t.Errorf("%s: %+v", path, p)
		}
	}
}

// TestBurstSharesOneRead: concurrent list requests share one full read,
// and the read is reused until it is older than the max age
// (billing.WithMaxAge).
func TestBurstSharesOneRead(t *testing.T) {
	const maxAge = 1500 * time.Millisecond
	e := newEnv(t, envConfig{plans: plansPostgres, svcOpts: []billing.Option{billing.WithMaxAge(maxAge)}})
	e.seedPlansIssue()

	// How many SCAN calls one full read takes here (one, with a keyspace
	// this small; measured rather than assumed).
	scans := e.redis.CommandCalls("scan")
	probe := New(billing.New(e.store, append(e.svcOpts, billing.WithMaxAge(0))...))
	r := do(t, e.client, http.MethodGet, newAPIServer(t, probe)+"/api/v1/tenants")
	r.wantStatus(t, http.StatusOK)
	perRead := e.redis.CommandCalls("scan") - scans
	if perRead < 1 {
		t.Fatalf("a full read made %d SCAN calls", perRead)
	}

	const burst = 20
	scans = e.redis.CommandCalls("scan")
	var wg sync.WaitGroup
	results := make([]*response, burst)
	start := make(chan struct{})
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			q := []string{"", "?min_percentage=80", "?limit=1", "?limit_type=users"}[i%4]
			results[i] = do(t, e.client, http.MethodGet, e.server.URL+"/api/v1/tenants"+q)
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range results {
		if r.Status != http.StatusOK {
			t.Errorf("request %d: status %d: %s", i, r.Status, r.Body)
		}
	}
	if n := e.redis.CommandCalls("scan") - scans; n > perRead {
		t.Errorf("%d concurrent list requests made %d SCAN calls, want at most %d (one read)", burst, n, perRead)
	}

	// Within the max age: no read at all; the plans come from it too, and
	// the age says how old the data is.
	time.Sleep(300 * time.Millisecond)
	scans = e.redis.CommandCalls("scan")
	l := e.list("?min_percentage=80")
	p := e.plans()
	if n := e.redis.CommandCalls("scan") - scans; n != 0 {
		t.Errorf("%d SCAN calls within the max age", n)
	}
	if l.DataAgeSeconds < 0.3 || l.DataAgeSeconds >= maxAge.Seconds() || p.DataAgeSeconds < l.DataAgeSeconds {
		t.Errorf("data_age_seconds %v (list), %v (plans) for data read over 0.3s ago", l.DataAgeSeconds, p.DataAgeSeconds)
	}
	// Past it: one new read, and fresh data.
	time.Sleep(maxAge)
	scans = e.redis.CommandCalls("scan")
	l = e.list("")
	if n := e.redis.CommandCalls("scan") - scans; n != perRead {
		t.Errorf("%d SCAN calls after the max age, want %d", n, perRead)
	}
	if l.DataAgeSeconds >= 0.3 {
		t.Errorf("data_age_seconds %v right after a read", l.DataAgeSeconds)
	}
}
