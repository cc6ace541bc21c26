package collector

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// november is a fixed clock inside period 202611 (UTC).
var november = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

type fixture struct {
	redis   *testserver.Redis
	store   *read.Reader
	handler *Handler
	server  *httptest.Server
}

func newFixture(t *testing.T, serviceOpts []billing.Option, storeOpts ...conn.Option) *fixture {
	t.Helper()
	return newFixtureOnRedis(t, &fixture{redis: testserver.StartRedis(t)}, serviceOpts, storeOpts...)
}

// newFixtureOnRedis builds the exporter side of a fixture over f's Redis.
func newFixtureOnRedis(t *testing.T, f *fixture, serviceOpts []billing.Option, storeOpts ...conn.Option) *fixture {
	t.Helper()
	f = &fixture{redis: f.redis}
	target, err := conn.ParseTarget(f.redis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	static := prometheus.NewRegistry()
	in := NewInstruments(static)
	f.store, err = read.New(target, append([]conn.Option{conn.WithObserver(in.ObserveRedis)}, storeOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	opts := append([]billing.Option{billing.WithClock(func() time.Time { return november })}, serviceOpts...)
	svc := billing.New(f.store, opts...)
	f.handler = NewHandler(svc, static, slog.New(slog.DiscardHandler))
	f.server = httptest.NewServer(f.handler)
	t.Cleanup(f.server.Close)
	return f
}

func (f *fixture) scrape(t *testing.T) *scrapetest.Result {
	t.Helper()
	r := scrapetest.Get(t, nil, f.server.URL, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("scrape status %d: %s", r.Status, r.Body)
	}
	return r
}

func TestUsageMetrics(t *testing.T) {
	f := newFixture(t, nil)
	f.redis.HSet("usage:1:202611", "messages", 4250, "storage", 1048576, "users", 3, "whatsappSessions", 1)
	f.redis.HSet("usage:2:202610", "messages", 10)
	f.redis.HSet("usage:3:202611", "messages", 7, "apiCalls", 12)
	f.redis.HSet("usage:4:202611", "messages", "-1", "users", 2)
	f.redis.Do("SET", "usage:5:202611", "string")
	f.redis.HSet("usage:6:bogus", "messages", 1)
	f.redis.HSet(`usage:we"ird ✓:202611`, "messages", 9)

	r := f.scrape(t)
	cases := []struct {
		tenant, metricType string
		want               float64
	}{
		{"1", "messages", 4250},
		{"1", "storage", 1048576},
		{"1", "users", 3},
		{"1", "whatsappSessions", 1},
		{"3", "messages", 7},
		{"3", "apiCalls", 12},
		{"4", "users", 2},
		{`we"ird ✓`, "messages", 9},
	}
	for _, tc := range cases {
		if got := r.MustValue(t, "billing_usage", "tenant_id", tc.tenant, "metric_type", tc.metricType); got != tc.want {
			t.Errorf("billing_usage{tenant_id=%q,metric_type=%q} = %v, want %v", tc.tenant, tc.metricType, got, tc.want)
		}
	}
	if got := len(r.Samples("billing_usage")); got != len(cases) {
		t.Errorf("%d billing_usage series, want %d:\n%s", got, len(cases), r.Lines("billing_usage{"))
	}
	for _, absent := range []string{"2", "5", "6"} {
		if s := r.Samples("billing_usage", "tenant_id", absent); len(s) != 0 {
			t.Errorf("tenant %s exported: %v", absent, s)
		}
	}
	if s := r.Samples("billing_usage", "tenant_id", "4", "metric_type", "messages"); len(s) != 0 {
		t.Error("negative value exported")
	}
	wantScalars := map[string]float64{
		"billing_redis_up":         1,
		"billing_redis_usage_keys": 6, // 1, 2 (previous period), 3, 4, 5 (wrong type), we"ird
	}
	for name, want := range wantScalars {
		if got := r.MustValue(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for reason, want := range map[string]float64{"malformed_key": 1, "wrong_type": 1, "invalid_value": 1, "invalid_field": 0} {
		if got := r.MustValue(t, "billing_exporter_invalid_data_items", "source", "redis", "reason", reason); got != want {
			t.Errorf("invalid %s = %v, want %v", reason, got, want)
		}
	}
	if mem := r.MustValue(t, "billing_redis_memory_bytes"); mem <= 0 {
		t.Errorf("billing_redis_memory_bytes = %v", mem)
	}
	if conns := r.MustValue(t, "billing_redis_connections_active"); conns < 1 {
		t.Errorf("billing_redis_connections_active = %v", conns)
	}
	for _, op := range []string{"scan", "hgetall", "info"} {
		if n := r.Samples("billing_redis_operation_duration_seconds", "operation", op); len(n) != 1 || n[0].GetHistogram().GetSampleCount() == 0 {
			t.Errorf("no observations of operation %q", op)
		}
	}
	if !strings.Contains(string(r.Body), `billing_redis_operation_duration_seconds_bucket{operation="scan",le="0.1"}`) {
		t.Error("histogram lacks the 0.1 bucket")
	}
	scrapetest.PromtoolCheck(t, r.Body)
}

func TestPeriodRollover(t *testing.T) {
	saoPaulo, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		now        time.Time
		loc        *time.Location
		wantTenant string
	}{
		{"utc november", time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC), time.UTC, "nov"},
		{"utc december", time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC), time.UTC, "dec"},
		{"sao paulo november", time.Date(2026, 11, 30, 23, 59, 0, 0, saoPaulo), saoPaulo, "nov"},
		{"sao paulo december", time.Date(2026, 12, 1, 0, 1, 0, 0, saoPaulo), saoPaulo, "dec"},
		// 01:00 UTC on 1 December is 22:00 on 30 November in São Paulo.
		{"utc december is still november in sao paulo", time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), saoPaulo, "nov"},
	}
	srv := testserver.StartRedis(t)
	srv.HSet("usage:nov:202611", "messages", 1)
	srv.HSet("usage:dec:202612", "messages", 2)
	target, _ := conn.ParseTarget(srv.Addr())
	store, err := read.New(target)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := billing.New(store, billing.WithLocation(tc.loc), billing.WithClock(func() time.Time { return tc.now }))
			h := NewHandler(svc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			ts := httptest.NewServer(h)
			defer ts.Close()
			r := scrapetest.Get(t, nil, ts.URL, nil)
			if got := r.LabelValues("billing_usage", "tenant_id"); len(got) != 1 || got[0] != tc.wantTenant {
				t.Errorf("tenants = %v, want [%s]", got, tc.wantTenant)
			}
			start := r.MustValue(t, "billing_period_start_timestamp_seconds")
			end := r.MustValue(t, "billing_period_end_timestamp_seconds")
			if !(start <= float64(tc.now.Unix()) && float64(tc.now.Unix()) < end) {
				t.Errorf("period [%v, %v) does not contain %v", start, end, tc.now.Unix())
			}
		})
	}
}

func TestRedisDownAndRecovery(t *testing.T) {
	f := newFixture(t, nil, conn.WithTimeouts(500*time.Millisecond, time.Second, time.Second))
	f.redis.HSet("usage:1:202611", "messages", 4250)
	if r := f.scrape(t); r.MustValue(t, "billing_redis_up") != 1 {
		t.Fatal("redis_up 0 with Redis running")
	}
	f.redis.Stop()
	r := scrapetest.Get(t, nil, f.server.URL, map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "3"})
	if r.Status != http.StatusOK {
		t.Fatalf("scrape with Redis down: status %d", r.Status)
	}
	if got := r.MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v with Redis stopped", got)
	}
	for _, name := range []string{"billing_usage", "billing_redis_usage_keys", "billing_redis_memory_bytes"} {
		if _, ok := r.Families[name]; ok {
			t.Errorf("%s exported while Redis is down:\n%s", name, r.Lines(name))
		}
	}
	scrapetest.PromtoolCheck(t, r.Body)

	f.redis.Start()
	f.redis.HSet("usage:1:202611", "messages", 4300)
	r = f.scrape(t)
	if got := r.MustValue(t, "billing_redis_up"); got != 1 {
		t.Errorf("billing_redis_up = %v after restart", got)
	}
	if got := r.MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 4300 {
		t.Errorf("messages = %v after restart, want 4300", got)
	}
}

// seedMany writes n current-period usage keys in one pipeline.
func seedMany(t *testing.T, srv *testserver.Redis, n int) {
	t.Helper()
	c := srv.Conn()
	for i := range n {
		if err := c.Send("HSET", "usage:"+strconv.Itoa(i)+":202611", "messages", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Do(""); err != nil {
		t.Fatal(err)
	}
}

func TestAbandonedScrapeStopsRedisWork(t *testing.T) {
	// A small SCAN COUNT makes the read take thousands of round trips, so it
	// is still running when the client leaves.
	f := newFixture(t, nil, conn.WithScanCount(2), conn.WithBatchSize(2))
	const keys = 20000
	seedMany(t, f.redis, keys)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.server.URL, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	waitUntil(t, func() bool { return f.redis.CommandCalls("scan") > 10 })
	cancel()
	<-done

	// Once the client has gone, the SCAN count must settle well short of a
	// full read (keys / COUNT round trips).
	var last int
	waitUntil(t, func() bool {
		n := f.redis.CommandCalls("scan")
		settled := n == last
		last = n
		time.Sleep(200 * time.Millisecond)
		return settled
	})
	if last >= keys/2 {
		t.Fatalf("SCAN ran %d times: the read went on after the client left", last)
	}
	time.Sleep(300 * time.Millisecond)
	if n := f.redis.CommandCalls("scan"); n != last {
		t.Errorf("SCAN calls grew from %d to %d after the client left", last, n)
	}
}

func TestConcurrentScrapesShareOneRead(t *testing.T) {
	f := newFixture(t, nil, conn.WithScanCount(50), conn.WithBatchSize(50))
	seedMany(t, f.redis, 2000)

	// One scrape alone: how many SCANs a read takes.
	f.scrape(t)
	solo := f.redis.CommandCalls("scan")

	// Freeze Redis, then send five scrapes while it sleeps: the first starts
	// a read that waits on Redis, and the other four must join it rather
	// than start their own. (Freezing Redis only once the first read was
	// under way raced with that read: it can finish in a few milliseconds.)
	before := f.redis.CommandCalls("scan")
	var wg sync.WaitGroup
	results := make(chan float64, 5)
	scrape := func() {
		defer wg.Done()
		r := scrapetest.Get(t, nil, f.server.URL, nil)
		v, _ := r.Value("billing_usage", "tenant_id", "1999", "metric_type", "messages")
		results <- v
	}
	sleeper := f.redis.Conn()
	go func() { sleeper.Do("DEBUG", "SLEEP", "1") }()
	waitUntil(t, func() bool { return redisFrozen(f.redis) })
	for range 5 {
		wg.Add(1)
		go scrape()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(results)
	for v := range results {
		if v != 1999 {
			t.Errorf("a concurrent scrape saw messages = %v, want 1999", v)
		}
	}
	if got := f.redis.CommandCalls("scan") - before; got != solo {
		t.Errorf("5 concurrent scrapes ran %d SCANs; one read takes %d", got, solo)
	}
}

// redisFrozen reports whether r leaves a PING unanswered for 50 ms (it is
// busy with DEBUG SLEEP).
func redisFrozen(r *testserver.Redis) bool {
	c, err := redis.Dial("tcp", r.Addr(), redis.DialReadTimeout(50*time.Millisecond))
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Do("PING")
	return err != nil
}

func TestScrapeTimeout(t *testing.T) {
	h := NewHandler(nil, nil, slog.New(slog.DiscardHandler), WithTimeoutOffset(250*time.Millisecond), WithMaxTimeout(20*time.Second))
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 20 * time.Second},
		{"10", 9750 * time.Millisecond},
		{"2.5", 2250 * time.Millisecond},
		{"0.2", 200 * time.Millisecond}, // no room for the offset
		{"60", 20 * time.Second},        // capped
		{"abc", 20 * time.Second},
		{"-3", 20 * time.Second},
		{"NaN", 20 * time.Second},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tc.header != "" {
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := h.ScrapeTimeout(req); got != tc.want {
			t.Errorf("header %q: timeout %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestScrapeHonoursTimeoutHeader(t *testing.T) {
	f := newFixture(t, nil)
	f.redis.HSet("usage:1:202611", "messages", 1)
	// Redis frozen for longer than the scrape's budget: the scrape must
	// still answer, reporting Redis down, instead of waiting.
	go f.redis.Conn().Do("DEBUG", "SLEEP", "3")
	time.Sleep(100 * time.Millisecond)
	r := scrapetest.Get(t, nil, f.server.URL, map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "1"})
	if r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	if got := r.MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v while Redis slept past the deadline", got)
	}
	if _, ok := r.Families["billing_usage"]; ok {
		t.Error("usage exported from a read that did not finish")
	}
}

func TestMaxRequests(t *testing.T) {
	h := NewHandler(nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), WithMaxRequests(1))
	h.inflight <- struct{}{} // one scrape in flight
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d with the limit reached, want 503", rec.Code)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gatedPlans is a plans source that answers at once until blocked, then
// holds every read until its context ends.
type gatedPlans struct{ blocked atomic.Bool }

func (g *gatedPlans) Load(ctx context.Context) (*plans.Catalog, error) {
	if g.blocked.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return plans.NewCatalog(), nil
}

// TestCutScrapeKeepsSourceHealth checks that a scrape cut by its deadline
// still carries the source-health series (Redis and PostgreSQL up, plans
// age, period), so that one cut scrape does not reset the alerts on them.
func TestCutScrapeKeepsSourceHealth(t *testing.T) {
	src := &gatedPlans{}
	f := newFixture(t, []billing.Option{billing.WithConfig(billing.Config{Plans: src, PlansName: "postgres"})})
	f.redis.HSet("usage:1:202611", "messages", 10)
	full := f.scrape(t)
	if got := full.MustValue(t, "billing_postgres_up"); got != 1 {
		t.Fatalf("billing_postgres_up = %v on a full scrape", got)
	}

	src.blocked.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	read, err := f.handler.service.Read(ctx)
	if err == nil {
		t.Fatal("a scrape whose context ended during the read returned no error")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(read, err, 0, slog.New(slog.DiscardHandler)))
	families, gatherErr := reg.Gather()
	if gatherErr != nil {
		t.Fatal(gatherErr)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 {
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"billing_redis_up":                       0,
		"billing_postgres_up":                    1, // the last read of the plans worked
		"billing_period_start_timestamp_seconds": float64(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix()),
		"billing_period_end_timestamp_seconds":   float64(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Unix()),
		"billing_plans_age_seconds":              0, // the fixture's clock stands still
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("cut scrape: %s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	if _, ok := got["billing_usage"]; ok {
		t.Error("usage exported from a cut scrape")
	}
}

// TestMaxTenantsKeepsAlertingTenants checks --metrics.max-tenants through
// the handler with seat and consumption limits: a tenant at its one allowed
// WhatsApp session (100 %, normal use) does not push out one at 85 % of its
// messages (BillingUsageNearLimit) or one over its users.
func TestMaxTenantsKeepsAlertingTenants(t *testing.T) {
	cat := plans.NewCatalog(plans.Tenant{ID: "one-session", Plan: "1"}, plans.Tenant{ID: "messages-85", Plan: "1"},
		plans.Tenant{ID: "users-over", Plan: "1"}, plans.Tenant{ID: "low", Plan: "1"})
	cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 100, "users": 5, "whatsappSessions": 1}}
	f := newFixture(t, []billing.Option{billing.WithConfig(billing.Config{Plans: staticPlans{cat}, PlansName: "postgres"})})
	f.handler = NewHandler(f.handler.service, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), WithMaxTenants(2))
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	// Mid-month (the fixture's clock), 10 of 100 messages is not on course
	// to pass the limit: only the session is at its limit.
	f.redis.HSet("usage:one-session:202611", "messages", 10, "whatsappSessions", 1)
	f.redis.HSet("usage:messages-85:202611", "messages", 85)
	f.redis.HSet("usage:users-over:202611", "users", 6)
	f.redis.HSet("usage:low:202611", "messages", 5)

	r := scrapetest.Get(t, nil, srv.URL, nil)
	got := r.LabelValues("billing_usage_percentage", "tenant_id")
	slices.Sort(got)
	got = slices.Compact(got)
	if want := []string{"messages-85", "users-over"}; !slices.Equal(got, want) {
		t.Errorf("with --metrics.max-tenants=2 the exported tenants are %v, want %v", got, want)
	}
	if omitted := r.MustValue(t, "billing_exporter_tenants_omitted"); omitted != 2 {
		t.Errorf("billing_exporter_tenants_omitted = %v, want 2", omitted)
	}
}
