package collector

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/mirror"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

type staticPlans struct{ cat *plans.Catalog }

func (s staticPlans) Load(context.Context) (*plans.Catalog, error) { return s.cat, nil }

// BenchmarkScrape profiles a whole scrape (Redis read, join, exposition)
// against a real redis-server holding BENCH_TENANTS tenants (default 10000)
// × 3 months. For profiles:
//
//	BENCH_TENANTS=100000 go test -run '^$' -bench Scrape -cpuprofile cpu.out ./collector/
//
// BENCH_POSTGRES=1 reads the plans from a real PostgreSQL instead of a
// static catalog.
func BenchmarkScrape(b *testing.B) {
	f := newBenchFixture(b)
	svc := billing.New(f.store, billing.WithClock(func() time.Time { return november }), billing.WithPlansRefresh(time.Minute),
		billing.WithConfig(billing.Config{Plans: f.plans, PlansName: "postgres", Defaults: plans.Limits{"messages": 1000}}))
	defer svc.Close()
	h := NewHandler(svc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), WithMaxTimeout(time.Minute))
	for _, enc := range []string{"", "gzip"} {
		b.Run("encoding="+enc, func(b *testing.B) {
			for b.Loop() {
				rec := &discardRecorder{header: http.Header{}}
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept-Encoding", enc)
				h.ServeHTTP(rec, req)
			}
		})
	}
}

// benchFixture is what both scrape benchmarks read: a real redis-server
// holding BENCH_TENANTS tenants (default 10000) × 3 months, a store on it,
// and plans for every tenant (BENCH_POSTGRES=1: from a real PostgreSQL).
type benchFixture struct {
	tenants int
	conn    redis.Conn // to the server, for writes between scrapes
	store   *read.Reader
	plans   plans.Source
}

func newBenchFixture(b *testing.B) benchFixture {
	f := benchFixture{tenants: 10000}
	if v, err := strconv.Atoi(os.Getenv("BENCH_TENANTS")); err == nil && v > 0 {
		f.tenants = v
	}
	srv := testserver.StartRedis(b)
	f.conn = srv.Conn()
	b.Cleanup(func() { f.conn.Close() })
	for i := range f.tenants {
		for _, p := range []string{"202611", "202610", "202609"} {
			f.conn.Send("HSET", "usage:"+strconv.Itoa(i)+":"+p, "messages", i%5000, "storage", i*1000, "users", i%7, "whatsappSessions", i%3)
		}
		if i%1000 == 999 {
			if _, err := f.conn.Do(""); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := f.conn.Do(""); err != nil {
		b.Fatal(err)
	}
	rows := make([]plans.Tenant, f.tenants)
	for i := range rows {
		rows[i] = plans.Tenant{ID: strconv.Itoa(i), Plan: strconv.Itoa(1 + i%2)}
	}
	cat := plans.NewCatalog(rows...)
	cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "storage": 1 << 30, "users": 5, "whatsappSessions": 1}}
	cat.Plans["2"] = plans.Plan{ID: "2", Name: "pro", Limits: plans.Limits{"messages": 50000, "storage": 10 << 30, "users": 25, "whatsappSessions": 5}}
	f.plans = staticPlans{cat}
	if os.Getenv("BENCH_POSTGRES") != "" {
		f.plans = postgresPlans(b, f.tenants)
	}
	target, _ := conn.ParseTarget(srv.Addr())
	store, err := read.New(target)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	f.store = store
	return f
}

// postgresPlans serves the same plans from a real PostgreSQL
// (BENCH_POSTGRES=1), as in production.
func postgresPlans(b *testing.B, n int) plans.Source {
	pg := testserver.StartPostgres(b)
	testserver.LoadSchema(b, pg, "../examples/schema.sql")
	pg.Exec(`INSERT INTO plans VALUES (1, 'starter', 5000, 1073741824, 5, 1), (2, 'pro', 50000, 10737418240, 25, 5);
INSERT INTO tenants SELECT g, 'tenant ' || g, 1 + g % 2 FROM generate_series(0, ` + strconv.Itoa(n-1) + `) g;`)
	db, err := postgres.Open("dsn", func() (string, error) { return pg.DSN(), nil })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return postgres.New(db)
}

// discardRecorder is an http.ResponseWriter that throws the body away.
type discardRecorder struct{ header http.Header }

func (d *discardRecorder) Header() http.Header         { return d.header }
func (d *discardRecorder) Write(p []byte) (int, error) { return io.Discard.Write(p) }
func (d *discardRecorder) WriteHeader(int)             {}

// BenchmarkScrapeTrack profiles a track-mode scrape (the mirror of
// --redis.read-mode=track) after BENCH_CHANGED (a share, default 0.01) of
// BENCH_TENANTS tenants (default 10000) × 3 months changed and BENCH_NEW
// tenants added, the writes outside the timer. BENCH_MAX_TENANTS sets
// --metrics.max-tenants and BENCH_PLANS_REFRESH --plans.refresh-interval
// (default 1m). It
// reports the live heap after the scrapes (live-MB), what the mirror and
// the last read keep between scrapes; BENCH_HEAPPROFILE=file writes a heap
// profile of it. For profiles:
//
//	BENCH_TENANTS=100000 go test -run '^$' -bench ScrapeTrack -cpuprofile cpu.out ./collector/
func BenchmarkScrapeTrack(b *testing.B) {
	f := newBenchFixture(b)
	n, c := f.tenants, f.conn
	share := 0.01
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_CHANGED"), 64); err == nil {
		share = v
	}
	maxTenants, _ := strconv.Atoi(os.Getenv("BENCH_MAX_TENANTS"))
	refresh := time.Minute
	if d, err := time.ParseDuration(os.Getenv("BENCH_PLANS_REFRESH")); err == nil && d > 0 {
		refresh = d
	}
	mirror := mirror.New(f.store, usage.MustParseKeyPattern(usage.DefaultKeyPattern), mirror.WithResyncInterval(0))
	defer mirror.Close()
	svc := billing.New(mirror, billing.WithClock(func() time.Time { return november }), billing.WithPlansRefresh(refresh),
		billing.WithConfig(billing.Config{Plans: f.plans, PlansName: "postgres", Defaults: plans.Limits{"messages": 1000}}))
	defer svc.Close()
	h := NewHandler(svc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), WithMaxTimeout(10*time.Minute), WithMaxTenants(maxTenants))
	scrape := func() {
		rec := &discardRecorder{header: http.Header{}}
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	}
	// checked scrapes, outside the timer, prove the timed ones read both sources.
	checked := func(when string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for _, up := range []string{"billing_redis_up 1", "billing_postgres_up 1"} {
			if !strings.Contains(rec.Body.String(), "\n"+up+"\n") {
				b.Fatalf("scrape %s: no %q", when, up)
			}
		}
	}
	checked("seeding the mirror")
	changed := int(share * float64(n))
	added, _ := strconv.Atoi(os.Getenv("BENCH_NEW"))
	next, nextNew := 0, n
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for range changed {
			c.Send("HINCRBY", "usage:"+strconv.Itoa(next%n)+":202611", "messages", 1)
			next++
		}
		for range added {
			c.Send("HINCRBY", "usage:"+strconv.Itoa(nextNew)+":202611", "messages", 1)
			nextNew++
		}
		if _, err := c.Do(""); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		scrape()
	}
	b.StopTimer()
	checked("after the timed ones")
	// Twice: the second frees what the first one's finalizers and the
	// pools let go.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MB")
	if path := os.Getenv("BENCH_HEAPPROFILE"); path != "" {
		// What stays live between scrapes (the mirror, the last read),
		// while the handler still holds it.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	runtime.KeepAlive(h)
}
