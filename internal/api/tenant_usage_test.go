package api

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

func TestTenantUsagePlansIssue(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres})
	e.seedPlansIssue()

	// november: 14.5 of 30 days have passed.
	const elapsed = 14.5 / 30
	cases := []struct {
		tenant        string
		plan          *planJSON
		usingDefaults bool
		recorded      bool
		metrics       map[string]metricJSON
	}{
		{
			tenant: "1", plan: &planJSON{"1", "starter"}, recorded: true,
			// Only messages: the plan limits nothing else and the hash has
			// no other field.
			metrics: map[string]metricJSON{
				"messages": {Used: ptr[int64](4250), Limit: ptr[int64](5000), Remaining: ptr[int64](750), Exceeded: ptr(false),
					Reached: ptr(false), Band: ptr("near"), Percentage: ptr(85.0), MonthlyReset: true, Projected: ptr[int64](8793),
					ProjectedPercentage: ptr(175.86), ProjectedLimitDate: ptr("2026-11-18")},
			},
		},
		{
			tenant: "2", plan: &planJSON{"1", "starter"}, recorded: false,
			metrics: map[string]metricJSON{
				"messages": {Used: ptr[int64](0), Limit: ptr[int64](5000), Remaining: ptr[int64](5000), Exceeded: ptr(false),
					Reached: ptr(false), Band: ptr("none"), Percentage: ptr(0.0), MonthlyReset: true, Projected: ptr[int64](0), ProjectedPercentage: ptr(0.0)},
			},
		},
		{
			tenant: "3", usingDefaults: true, recorded: true,
			metrics: map[string]metricJSON{
				"messages": {Used: ptr[int64](10), Limit: ptr[int64](1000), Remaining: ptr[int64](990), Exceeded: ptr(false),
					Reached: ptr(false), Band: ptr("none"), Percentage: ptr(1.0), MonthlyReset: true, Projected: ptr[int64](21), ProjectedPercentage: ptr(2.1)},
				"storage":          {Used: ptr[int64](0), Limit: ptr[int64](104857600), Remaining: ptr[int64](104857600), Exceeded: ptr(false), Reached: ptr(false), Band: ptr("none"), Percentage: ptr(0.0)},
				"users":            {Used: ptr[int64](0), Limit: ptr[int64](2), Remaining: ptr[int64](2), Exceeded: ptr(false), Reached: ptr(false), Band: ptr("none"), Percentage: ptr(0.0)},
				"whatsappSessions": {Used: ptr[int64](0), Limit: ptr[int64](1), Remaining: ptr[int64](1), Exceeded: ptr(false), Reached: ptr(false), Band: ptr("none"), Percentage: ptr(0.0)},
			},
		},
	}
	for _, tc := range cases {
		t.Run("tenant "+tc.tenant, func(t *testing.T) {
			u := e.usage(tc.tenant)
			if u.TenantID != tc.tenant || !reflect.DeepEqual(u.Plan, tc.plan) || deref(u.UsingDefaults) != tc.usingDefaults ||
				!u.LimitsKnown || u.PlansStale || u.UsageRecorded != tc.recorded {
				t.Errorf("got tenant %q plan %+v using_defaults %v limits_known %v plans_stale %v usage_recorded %v",
					u.TenantID, u.Plan, deref(u.UsingDefaults), u.LimitsKnown, u.PlansStale, u.UsageRecorded)
			}
			if !reflect.DeepEqual(u.Metrics, tc.metrics) {
				t.Errorf("metrics:\n got %s\nwant %s", dump(u.Metrics), dump(tc.metrics))
			}
			wantPeriod := periodJSON{"202611", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", elapsed}
			if u.Period.ID != wantPeriod.ID || u.Period.Start != wantPeriod.Start || u.Period.End != wantPeriod.End ||
				u.Period.ElapsedFraction != round(elapsed, 6) {
				t.Errorf("period %+v, want %+v", u.Period, wantPeriod)
			}
			if u.GeneratedAt != "2026-11-15T12:00:00Z" {
				t.Errorf("generated_at %q", u.GeneratedAt)
			}
			if u.PlansAgeSeconds == nil {
				t.Error("plans_age_seconds is null with PostgreSQL read")
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		r := e.get("/api/v1/tenants/999999/usage")
		r.wantStatus(t, http.StatusNotFound)
		p := r.problem(t)
		if p.Type != ProblemUnknownTenant || p.Instance != "/api/v1/tenants/999999/usage" || !strings.Contains(p.Detail, "999999") {
			t.Errorf("problem %+v", p)
		}
	})
	t.Run("glob id", func(t *testing.T) {
		r := e.get("/api/v1/tenants/1*/usage")
		r.wantStatus(t, http.StatusBadRequest)
		if p := r.problem(t); p.Type != ProblemInvalidParameter || p.Parameter != "tenant_id" || !strings.Contains(p.Detail, "glob") {
			t.Errorf("problem %+v", p)
		}
	})
	t.Run("no scan per request", func(t *testing.T) {
		scans, hgetalls := e.redis.CommandCalls("scan"), e.redis.CommandCalls("hgetall")
		for range 5 {
			e.usage("1")
		}
		if n := e.redis.CommandCalls("scan") - scans; n != 0 {
			t.Errorf("%d SCAN calls for 5 usage requests, want 0", n)
		}
		if n := e.redis.CommandCalls("hgetall") - hgetalls; n != 5 {
			t.Errorf("%d HGETALL calls for 5 usage requests, want 5", n)
		}
	})
}

func dump(m map[string]metricJSON) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		v := m[k]
		fmt.Fprintf(&b, "%s:{used %v limit %v remaining %v exceeded %v pct %v monthly %v projected %v projected_pct %v} ",
			k, deref(v.Used), deref(v.Limit), deref(v.Remaining), deref(v.Exceeded), deref(v.Percentage), v.MonthlyReset,
			deref(v.Projected), deref(v.ProjectedPercentage))
	}
	return b.String()
}

// TestHostileTenantIDs: whatever the id, nothing malformed reaches Redis,
// and the answer is a documented problem.
func TestHostileTenantIDs(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.redis.HSet("usage:ação:202611", "messages", 5)
	e.redis.HSet("usage:a:b:202611", "messages", 6)
	e.redis.HSet("usage:..:202611", "messages", 7) // reachable as %2E%2E

	digits := func(n int) string { return strings.Repeat("9", n) }
	// Raw dot segments and an empty segment are cleaned by an
	// http.ServeMux (main's) into a redirect before the API sees them;
	// direct cases are sent to the API handler alone, which answers them
	// 404 without a lookup rather than redirect.
	cases := []struct {
		name    string
		segment string // as written in the request path
		status  int
		direct  bool
	}{
		{"star", "*", 400, false},
		{"trailing star", "1*", 400, false},
		{"question mark", "1%3F", 400, false},
		{"brackets", "%5B1%5D", 400, false},
		{"backslash", "1%5C", 400, false},
		{"encoded slash, unknown", "1%2F2", 404, false},
		{"encoded slash", "a%2Fb", 404, false},
		{"encoded dot-dot slash, unknown", "..%2F1", 404, false},
		{"encoded dot-dot", "%2E%2E", 200, false},
		{"raw dot", ".", 404, true},
		{"raw dot-dot", "..", 404, true},
		{"NUL", "1%00", 400, false},
		{"newline", "1%0A", 400, false},
		{"tab", "a%09b", 400, false},
		{"invalid UTF-8", "%FF", 400, false},
		{"zero-width space", "%E2%80%8B", 400, false},
		{"empty", "", 404, true},
		{"129 digits", digits(129), 400, false},
		{"10 kB of digits", digits(10000), 414, false},
		{"unicode", url.PathEscape("ação"), 200, false},
		{"unicode raw", "ação", 200, false},
		{"colon", "a:b", 200, false},
		{"128 digits, unknown", digits(128), 404, false},
	}
	before := e.redis.CommandCalls("hgetall")
	lookups := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := e.server.URL
			if tc.direct {
				base = e.direct
			}
			r := do(t, e.client, http.MethodGet, base+"/api/v1/tenants/"+tc.segment+"/usage")
			r.wantStatus(t, tc.status)
			if tc.status == 200 || tc.status == 404 && r.problem(t).Type == ProblemUnknownTenant {
				lookups++
			}
			if tc.direct && r.problem(t).Type != ProblemAboutBlank {
				t.Errorf("a dot or empty segment routed as a tenant id: %s", r.Body)
			}
			if tc.status == 400 {
				if p := r.problem(t); p.Parameter != "tenant_id" || p.Type != ProblemInvalidParameter {
					t.Errorf("problem %+v", p)
				}
			}
			if tc.status == 414 {
				if p := r.problem(t); p.Instance != "" || len(r.Body) > 1000 {
					t.Errorf("414 echoes the URI: %.200s", r.Body)
				}
			}
		})
	}
	if n := e.redis.CommandCalls("hgetall") - before; n != lookups {
		t.Errorf("%d HGETALL calls, want %d: a rejected id reached Redis", n, lookups)
	}

	// A raw "../1" is two segments: no such resource, not tenant "../1".
	do(t, e.client, http.MethodGet, e.direct+"/api/v1/tenants/../1/usage").wantStatus(t, http.StatusNotFound)
	// Behind main's mux, dot segments are redirected to the cleaned path
	// (which the API then answers 404) before the API sees them. The mux's
	// redirect is not an API response, so this client is not recorded.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	hgetalls := e.redis.CommandCalls("hgetall")
	for path, location := range map[string]string{
		"/api/v1/tenants/../1/usage": "/api/v1/1/usage",
		"/api/v1/tenants/./usage":    "/api/v1/tenants/usage",
	} {
		resp, err := plain.Get(e.server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != location {
			t.Errorf("mux: %s → %d %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
		e.get(location).wantStatus(t, http.StatusNotFound)
	}
	if n := e.redis.CommandCalls("hgetall") - hgetalls; n != 0 {
		t.Errorf("dot segments reached Redis (%d HGETALL)", n)
	}
	if u := e.usage(url.PathEscape("ação")); deref(u.Metrics["messages"].Used) != int64(5) || u.TenantID != "ação" {
		t.Errorf("ação: %+v", u)
	}
}

// TestEveryListedTenantIsFetchable: tenant ids that the exporter accepts
// from keys, whatever their characters (/, ., .., %, spaces, ...), are
// listed with a usage_path that answers through the same mux as main's,
// and percent-encoding them as the OpenAPI document says works too.
func TestEveryListedTenantIsFetchable(t *testing.T) {
	e := newEnv(t, envConfig{})
	ids := []string{"a/b", ".", "..", "...", "50%", "a%2Fb", "%", "with space", "a:b", "ação ✓", "~x", "a#c=1&d", "./..", "a//b", "/", "o'brien\"x", "1"}
	for i, id := range ids {
		e.redis.HSet("usage:"+id+":202611", "messages", 100+i)
	}
	// messages default limit 1000: every tenant is at 10 % or more.
	l := e.list("?limit_type=messages&min_percentage=0&limit=100")
	if len(l.Tenants) != len(ids) {
		t.Fatalf("listed %d tenants %q, want %d", len(l.Tenants), l.ids(), len(ids))
	}
	for _, item := range l.Tenants {
		for _, path := range []string{item.UsagePath, documentedPath(item.TenantID)} {
			r := e.get(path)
			if r.Status != http.StatusOK {
				t.Errorf("tenant %q at %s: %d %s", item.TenantID, path, r.Status, r.Body)
				continue
			}
			var u usageJSON
			r.decode(t, &u)
			got, want := u.Metrics["messages"].Used, item.Used
			if u.TenantID != item.TenantID || got == nil || want == nil || *got != *want {
				t.Errorf("tenant %q at %s: got tenant %q with %s messages, want %s", item.TenantID, path, u.TenantID, show(got), show(want))
			}
		}
	}
}

// documentedPath encodes an id as openapi.yaml tells clients to, without
// the API's own helper: every byte but the unreserved ones as %XX, and
// . or .. as %2E.
func documentedPath(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	seg := b.String()
	if id == "." || id == ".." {
		seg = strings.Repeat("%2E", len(id))
	}
	return "/api/v1/tenants/" + seg + "/usage"
}

// TestProjection: only monthly-reset types are projected, and not before
// the minimum elapsed time; periods follow the billing time zone.
func TestProjection(t *testing.T) {
	saoPaulo, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	redis := testserver.StartRedis(t)
	redis.HSet("usage:1:202611", "messages", 300, "users", 2)
	cases := []struct {
		name        string
		now         time.Time
		loc         *time.Location
		projected   *int64
		start, end  string
		generatedAt string
	}{
		{"first hours: no projection", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), time.UTC, nil,
			"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-01T03:00:00Z"},
		{"just before a day", time.Date(2026, 11, 1, 23, 59, 59, 0, time.UTC), time.UTC, nil,
			"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-01T23:59:59Z"},
		// More than a day, as the mixin's BillingUsagePredictedToExceed.
		{"exactly a day", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.UTC, nil,
			"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-02T00:00:00Z"},
		{"just past a day: 30 × the first day", time.Date(2026, 11, 2, 0, 0, 1, 0, time.UTC), time.UTC, ptr[int64](9000),
			"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-02T00:00:01Z"},
		{"half the period", time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), time.UTC, ptr[int64](600),
			"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "2026-11-16T00:00:00Z"},
		// 02:00 UTC on 1 December is 23:00 on 30 November in São Paulo.
		{"sao paulo, last hour of november", time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), saoPaulo, ptr[int64](300),
			"2026-11-01T00:00:00-03:00", "2026-12-01T00:00:00-03:00", "2026-11-30T23:00:00-03:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvOnRedis(t, redis, envConfig{clock: tc.now, location: tc.loc})
			u := e.usage("1")
			m := u.Metrics["messages"]
			if !reflect.DeepEqual(m.Projected, tc.projected) {
				t.Errorf("projected %v, want %v", deref(m.Projected), deref(tc.projected))
			}
			if (m.ProjectedPercentage == nil) != (tc.projected == nil) {
				t.Errorf("projected_percentage %v with projected %v", deref(m.ProjectedPercentage), deref(tc.projected))
			}
			if m.ProjectedPercentage != nil && *m.ProjectedPercentage != round(100*float64(*tc.projected)/1000, 4) {
				t.Errorf("projected_percentage %v", *m.ProjectedPercentage)
			}
			if users := u.Metrics["users"]; users.Projected != nil || users.MonthlyReset {
				t.Errorf("users, a current count, projected: %+v", users)
			}
			if u.Period.Start != tc.start || u.Period.End != tc.end || u.GeneratedAt != tc.generatedAt {
				t.Errorf("period %+v generated_at %s, want [%s, %s) %s", u.Period, u.GeneratedAt, tc.start, tc.end, tc.generatedAt)
			}
		})
	}
}

// TestExceededClampsRemaining: past the limit, remaining stays 0 and
// exceeded and the percentage say by how much.
func TestExceededClampsRemaining(t *testing.T) {
	e := newEnv(t, envConfig{})
	// At exactly a consumption limit the alert counts it reached, not exceeded.
	e.redis.HSet("usage:at:202611", "messages", 1000)
	if m := e.usage("at").Metrics["messages"]; deref(m.Reached) != true || deref(m.Exceeded) != false || deref(m.Band) != "reached" {
		t.Errorf("at the limit: reached %v exceeded %v band %v", deref(m.Reached), deref(m.Exceeded), deref(m.Band))
	}
	e.redis.HSet("usage:over:202611", "messages", 1500, "users", 2, "apiCalls", 7)
	u := e.usage("over")
	want := map[string]metricJSON{
		"messages": {Used: ptr[int64](1500), Limit: ptr[int64](1000), Remaining: ptr[int64](0), Exceeded: ptr(true), Reached: ptr(true),
			Band: ptr("reached"), Percentage: ptr(150.0), MonthlyReset: true, Projected: ptr[int64](3103), ProjectedPercentage: ptr(310.3)},
		// Seats at the limit are normal use: near, not reached.
		"users": {Used: ptr[int64](2), Limit: ptr[int64](2), Remaining: ptr[int64](0), Exceeded: ptr(false), Reached: ptr(false),
			Band: ptr("near"), Percentage: ptr(100.0)},
		"storage":          {Used: ptr[int64](0), Limit: ptr[int64](104857600), Remaining: ptr[int64](104857600), Exceeded: ptr(false), Reached: ptr(false), Band: ptr("none"), Percentage: ptr(0.0)},
		"whatsappSessions": {Used: ptr[int64](0), Limit: ptr[int64](1), Remaining: ptr[int64](1), Exceeded: ptr(false), Reached: ptr(false), Band: ptr("none"), Percentage: ptr(0.0)},
		// A field nobody limits: used only.
		"apiCalls": {Used: ptr[int64](7)},
	}
	if !reflect.DeepEqual(u.Metrics, want) {
		t.Errorf("metrics:\n got %s\nwant %s", dump(u.Metrics), dump(want))
	}
	if u.Plan != nil || deref(u.UsingDefaults) != true || u.PlansAgeSeconds != nil || u.PlansStale {
		t.Errorf("no plans source: plan %v using_defaults %v plans_age %v stale %v", u.Plan, deref(u.UsingDefaults), deref(u.PlansAgeSeconds), u.PlansStale)
	}
}

// show prints a nullable JSON number.
func show(v *int64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatInt(*v, 10)
}
