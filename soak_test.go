package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// soakTenants is how many tenants the soak reads, every one with usage in
// Redis and a row in PostgreSQL.
const soakTenants = 1000

// The exporter's Redis connections at rest in track mode: the tracking
// pair (the tracking and the subscribed connection) plus the idle
// connections its pool keeps (internal/redis/conn's MaxIdle).
const (
	trackingPairConns = 2
	redisPoolMaxIdle  = 2
)

// soakDuration is the load phase's length: SOAK_DURATION (a Go duration),
// 10s by default so that `make test` runs it briefly.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return 10 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("SOAK_DURATION=%q: want a positive Go duration such as 5m", s)
	}
	return d
}

// TestSoak runs the real binary on a real Redis and PostgreSQL under steady
// concurrent load for SOAK_DURATION (default 10s): 4 scrapers, 4 API readers
// and a writer incrementing usage with HINCRBY. It asserts zero 5xx and
// zero failed requests (--web.max-requests is set high: no 503 is
// expected), every scrape reading both sources, no goroutine or connection
// leak (go_goroutines, the exporter's Redis and PostgreSQL connections back
// to their baseline once the load stops), RSS at the end within 1.5× the
// RSS after warm-up, and a final scrape that is promtool-clean and agrees
// with Redis exactly. The figures are logged (go test -v).
//
//	SOAK_DURATION=5m go test -count=1 -run '^TestSoak$' -timeout 30m -v .
func TestSoak(t *testing.T) {
	duration := soakDuration(t)
	warmup := max(2*time.Second, duration/5)

	redisSrv := testserver.StartRedis(t)
	admin := redisSrv.Conn(redis.DialReadTimeout(30 * time.Second))
	cur := period.At(time.Now(), time.UTC).ID
	for i := range soakTenants {
		if err := admin.Send("HSET", "usage:"+strconv.Itoa(i)+":"+cur, "messages", i*3, "storage", i*1024, "users", i%7, "whatsappSessions", i%2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Do(""); err != nil {
		t.Fatal(err)
	}
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(fmt.Sprintf(`
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions) VALUES
  (1, 'starter', 1000, 1048576, 5, 1), (2, 'pro', 5000, NULL, 20, 3), (3, 'enterprise', NULL, NULL, NULL, NULL);
INSERT INTO tenants (id, name, plan_id)
  SELECT g, 'tenant ' || g, CASE WHEN g %% 10 = 0 THEN NULL ELSE 1 + g %% 3 END FROM generate_series(0, %d) g;`, soakTenants-1))

	e := startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()},
		"--redis.addr="+redisSrv.Addr(), "--web.max-requests=1000",
		"--config.file="+writeFile(t, "config.yml", defaultsYAML))

	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	scrapeHeaders := map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "10"}
	apiPath := func(rng *rand.Rand) string {
		switch n := rng.IntN(10); {
		case n < 6:
			return "/api/v1/tenants/" + strconv.Itoa(rng.IntN(soakTenants+50)) + "/usage" // some unknown: 404
		case n < 9:
			return fmt.Sprintf("/api/v1/tenants?limit_type=messages&min_percentage=%d&limit=%d", rng.IntN(120), 1+rng.IntN(200))
		default:
			return "/api/v1/plans"
		}
	}

	// Warm the pools up with a burst of everything at once, then take the
	// baselines at rest.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			fetch(client, e.URL+"/metrics", scrapeHeaders)
			fetch(client, e.URL+apiPath(rng), nil)
		}()
	}
	wg.Wait()
	transport.CloseIdleConnections()
	baseGoroutines := metricValue(t, e, "go_goroutines")
	baseRedisConns := exporterClients(t, admin)
	basePGConns := postgresSessions(t, pg.DSN())

	// The load.
	type tally struct {
		mu       sync.Mutex
		statuses map[string]int // "scrape 200", "api 404", …
		failures []string
	}
	tl := &tally{statuses: map[string]int{}}
	record := func(kind string, f fetched, ok func(fetched) string) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if f.err != nil {
			tl.failures = append(tl.failures, kind+": "+f.err.Error())
			return
		}
		tl.statuses[kind+" "+strconv.Itoa(f.status)]++
		if why := ok(f); why != "" && len(tl.failures) < 20 {
			tl.failures = append(tl.failures, kind+": "+why)
		}
	}
	scrapeOK := func(f fetched) string {
		switch {
		case f.status != http.StatusOK:
			return fmt.Sprintf("status %d: %.200s", f.status, f.body)
		case !strings.Contains(string(f.body), "\nbilling_redis_up 1\n"):
			return "a scrape without Redis"
		case !strings.Contains(string(f.body), "\nbilling_postgres_up 1\n"):
			return "a scrape without PostgreSQL"
		}
		return ""
	}
	apiOK := func(f fetched) string {
		if f.status != http.StatusOK && f.status != http.StatusNotFound {
			return fmt.Sprintf("status %d: %.200s", f.status, f.body)
		}
		return ""
	}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var writes atomic.Int64
	var warmRSS float64
	warmDone := make(chan struct{})
	start := time.Now()
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				record("scrape", fetch(client, e.URL+"/metrics", scrapeHeaders), scrapeOK)
			}
		}()
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			for ctx.Err() == nil {
				record("api", fetch(client, e.URL+apiPath(rng), nil), apiOK)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := redis.Dial("tcp", redisSrv.Addr(), redis.DialReadTimeout(10*time.Second))
		if err != nil {
			tl.mu.Lock()
			tl.failures = append(tl.failures, "writer: "+err.Error())
			tl.mu.Unlock()
			return
		}
		defer c.Close()
		rng := rand.New(rand.NewPCG(3, 3))
		for ctx.Err() == nil {
			for range 100 {
				_ = c.Send("HINCRBY", "usage:"+strconv.Itoa(rng.IntN(soakTenants))+":"+cur, "messages", 1)
			}
			if _, err := c.Do(""); err != nil {
				tl.mu.Lock()
				tl.failures = append(tl.failures, "writer: "+err.Error())
				tl.mu.Unlock()
				return
			}
			writes.Add(100)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() {
		defer close(warmDone)
		select {
		case <-time.After(warmup):
		case <-ctx.Done():
		}
		f := fetch(client, e.URL+"/metrics", scrapeHeaders)
		if f.err == nil && f.status == http.StatusOK {
			for _, line := range strings.Split(string(f.body), "\n") {
				if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
					warmRSS, _ = strconv.ParseFloat(v, 64)
				}
			}
		}
	}()
	wg.Wait()
	<-warmDone
	elapsed := time.Since(start)

	// At rest again: leaks would show now.
	transport.CloseIdleConnections()
	endRSS := metricValue(t, e, "process_resident_memory_bytes")
	// A leak grows with the load (thousands of requests, hundreds of
	// reads), so a bound a few goroutines above the baseline still finds
	// one. The bare baseline is one sample: once in CI, under the other
	// packages' load, the count at rest stayed above it for a minute
	// (cause not found; never reproduced alone or beside the internal/redis
	// tests, where rest and baseline were equal in every run).
	const atRestSlack = 3
	var goroutines float64
	eventually(t, fmt.Sprintf("go_goroutines back to its baseline %v (+%d)", baseGoroutines, atRestSlack), func() bool {
		goroutines = metricValue(t, e, "go_goroutines")
		return goroutines <= baseGoroutines+atRestSlack
	})
	var redisConns, pgConns int
	// The steady state is the track mode's tracking pair plus the pool's
	// idle connections; the baseline may have been taken while the pool
	// held fewer idle ones than it keeps, so the bound is whichever is
	// larger. A leak still grows past both.
	restRedisConns := max(baseRedisConns, trackingPairConns+redisPoolMaxIdle)
	eventually(t, "the exporter's Redis connections back to their baseline", func() bool {
		redisConns = exporterClients(t, admin)
		return redisConns <= restRedisConns
	})
	eventually(t, "the exporter's PostgreSQL sessions back to their baseline", func() bool {
		pgConns = postgresSessions(t, pg.DSN())
		return pgConns <= basePGConns
	})

	// A last scrape agrees with Redis to the sample.
	final := scrapeBy(t, e, 10*time.Second)
	scrapetest.PromtoolCheck(t, final.Body)
	for _, tenant := range []int{0, 1, soakTenants / 2, soakTenants - 1} {
		want, err := redis.Int64(admin.Do("HGET", "usage:"+strconv.Itoa(tenant)+":"+cur, "messages"))
		if err != nil {
			t.Fatal(err)
		}
		if got := final.MustValue(t, "billing_usage", "tenant_id", strconv.Itoa(tenant), "metric_type", "messages"); got != float64(want) {
			t.Errorf("tenant %d: billing_usage %v, Redis %d", tenant, got, want)
		}
	}

	tl.mu.Lock()
	defer tl.mu.Unlock()
	keys := make([]string, 0, len(tl.statuses))
	scrapes, apis := 0, 0
	for k, n := range tl.statuses {
		keys = append(keys, fmt.Sprintf("%s: %d", k, n))
		if strings.HasPrefix(k, "scrape") {
			scrapes += n
		} else {
			apis += n
		}
		if code, _ := strconv.Atoi(k[strings.LastIndex(k, " ")+1:]); code >= 500 {
			t.Errorf("%d responses with status %s", n, k)
		}
	}
	sort.Strings(keys)
	for _, f := range tl.failures {
		t.Errorf("failed request: %s", f)
	}
	t.Logf("soak: %v of load (%v warm-up), %d tenants", elapsed.Round(time.Millisecond), warmup, soakTenants)
	t.Logf("requests: %d scrapes (%.1f/s), %d API requests (%.1f/s), %d HINCRBY; statuses %v",
		scrapes, float64(scrapes)/elapsed.Seconds(), apis, float64(apis)/elapsed.Seconds(), writes.Load(), keys)
	t.Logf("RSS: %.1f MiB after warm-up, %.1f MiB at the end (×%.2f)", warmRSS/(1<<20), endRSS/(1<<20), endRSS/warmRSS)
	t.Logf("at rest: goroutines %v (baseline %v), Redis connections %d (baseline %d), PostgreSQL sessions %d (baseline %d)",
		goroutines, baseGoroutines, redisConns, baseRedisConns, pgConns, basePGConns)
	if scrapes == 0 || apis == 0 {
		t.Errorf("no load: %d scrapes, %d API requests", scrapes, apis)
	}
	if warmRSS == 0 {
		t.Error("no RSS reading after warm-up")
	} else if endRSS > 1.5*warmRSS {
		t.Errorf("RSS grew from %.1f MiB after warm-up to %.1f MiB at the end, over 1.5×", warmRSS/(1<<20), endRSS/(1<<20))
	}
}

// postgresSessions counts the sessions connected to the database other
// than this one: the exporter's pool.
func postgresSessions(t *testing.T, dsn string) int {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
