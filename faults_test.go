package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for holding locks

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// The fault tests run the real binary against real servers and break
// something between them. Each fault must give an honest scrape by the
// scrape's deadline (HTTP 200 before the client's own timeout,
// billing_redis_up 0 and no per-tenant numbers, or stale plans flagged as
// such) and recover without restarting the exporter. Nothing asserts how
// long anything took beyond "before the client gave up"; every wait for a
// recovery is bounded polling.

// perTenantFamilies are the per-tenant series, which must vanish when
// Redis cannot be read; fleetFamilies count tenants and vanish too.
var (
	perTenantFamilies = []string{"billing_usage", "billing_usage_limit", "billing_usage_percentage",
		"billing_tenant_using_defaults", "billing_tenant_plan_info"}
	fleetFamilies = []string{"billing_tenants_per_plan", "billing_tenants_over_threshold", "billing_redis_usage_keys"}
	// planFamilies are what stale plans must keep exactly as they were.
	planFamilies = []string{"billing_usage_limit", "billing_usage_percentage", "billing_tenant_using_defaults",
		"billing_tenant_plan_info", "billing_tenants_per_plan", "billing_tenants_over_threshold"}
)

// fetched is one HTTP exchange made outside the test goroutine.
type fetched struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// fetch GETs url with headers through client; it never calls t, so it may
// run in any goroutine.
func fetch(client *http.Client, url string, headers map[string]string) fetched {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return fetched{err: err}
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fetched{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return fetched{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// scrapeBy scrapes with X-Prometheus-Scrape-Timeout-Seconds set to budget
// and a client that gives up after budget, as Prometheus does: an answer is
// by the deadline or it is a failure.
func scrapeBy(t *testing.T, e *exporter, budget time.Duration) *scrapetest.Result {
	t.Helper()
	client := &http.Client{Timeout: budget}
	f := fetch(client, e.URL+"/metrics", map[string]string{
		"X-Prometheus-Scrape-Timeout-Seconds": strconv.FormatFloat(budget.Seconds(), 'f', -1, 64)})
	if f.err != nil {
		t.Fatalf("scrape with a %v budget: no answer before the client's own timeout: %v", budget, f.err)
	}
	return toResult(t, f)
}

func toResult(t *testing.T, f fetched) *scrapetest.Result {
	t.Helper()
	if f.status != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", f.status, f.body)
	}
	return &scrapetest.Result{Status: f.status, Body: f.body, Families: scrapetest.Parse(t, f.body)}
}

// assertRedisDownHonestly checks what a scrape says when Redis could not be
// read: billing_redis_up 0, not a single per-tenant or tenant-counting
// series, and an exposition promtool accepts.
func assertRedisDownHonestly(t *testing.T, r *scrapetest.Result) {
	t.Helper()
	if got := r.MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v, want 0", got)
	}
	for _, name := range append(append([]string{}, perTenantFamilies...), fleetFamilies...) {
		if _, ok := r.Families[name]; ok {
			t.Errorf("%s exported while Redis could not be read:\n%s", name, r.Lines(name))
		}
	}
	scrapetest.PromtoolCheck(t, r.Body)
}

// pollScrape scrapes until cond holds, for at most 60s.
func pollScrape(t *testing.T, e *exporter, what string, cond func(*scrapetest.Result) bool) *scrapetest.Result {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		f := fetch(&http.Client{Timeout: 15 * time.Second}, e.URL+"/metrics",
			map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "10"})
		if f.err == nil && f.status == http.StatusOK {
			r := toResult(t, f)
			if cond(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("not after 60s: %s; last scrape:\n%s", what, r.Body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("not after 60s: %s; last scrape: %v status %d", what, f.err, f.status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func redisUp(r *scrapetest.Result) bool {
	v, ok := r.Value("billing_redis_up")
	return ok && v == 1
}

// eventually polls cond every 100ms for at most 60s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not after 60s: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seedTenants writes n current-period usage hashes (tenants 0..n-1) with
// pipelined HSETs, plus one key of the previous period.
func seedTenants(t *testing.T, c redis.Conn, n int) {
	t.Helper()
	cur := period.At(time.Now(), time.UTC)
	for i := range n {
		if err := c.Send("HSET", "usage:"+strconv.Itoa(i)+":"+cur.ID, "messages", i, "users", i%10); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send("HSET", "usage:old:"+cur.Previous().ID, "messages", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(""); err != nil {
		t.Fatal(err)
	}
}

// commandCalls sums INFO commandstats calls of the named commands (lower
// case; "client|setname" style names for subcommands) over conn.
func commandCalls(t *testing.T, c redis.Conn, cmds ...string) int {
	t.Helper()
	text, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	total := 0
	for _, line := range strings.Split(text, "\r\n") {
		for _, cmd := range cmds {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
				n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
				total += n
			}
		}
	}
	return total
}

// exporterClients counts the connections Redis has from the exporter (it
// names them billing_exporter with CLIENT SETNAME).
func exporterClients(t *testing.T, c redis.Conn) int {
	t.Helper()
	list, err := redis.String(c.Do("CLIENT", "LIST"))
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	return strings.Count(list, " name=billing_exporter ")
}

// killExporterClients closes the exporter's connections from the Redis
// side and returns how many.
func killExporterClients(t *testing.T, c redis.Conn) int {
	t.Helper()
	list, err := redis.String(c.Do("CLIENT", "LIST"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if !strings.Contains(line, " name=billing_exporter ") {
			continue
		}
		id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
		if _, err := c.Do("CLIENT", "KILL", "ID", id); err == nil {
			n++
		}
	}
	return n
}

// metricValue scrapes /metrics and returns one sample of the exporter's
// own (go_*, process_*) metrics, without reading anything slow: a scrape
// while Redis is healthy.
func metricValue(t *testing.T, e *exporter, name string) float64 {
	t.Helper()
	return pollScrape(t, e, "a scrape", func(*scrapetest.Result) bool { return true }).MustValue(t, name)
}

// TestRedisFaults: each fault, injected while the exporter runs, gives an
// honest scrape by the scrape's deadline, and the exporter recovers by
// itself once the fault is gone.
func TestRedisFaults(t *testing.T) {
	cases := []struct {
		name string
		// keys is how many usage hashes to seed; args are extra flags.
		keys int
		args []string
		// viaProxy puts a FaultProxy between the exporter and Redis.
		viaProxy bool
		// inject breaks something and returns the budget of the scrape to
		// make during the fault, or 0 when inject scraped already itself.
		inject func(t *testing.T, f *faultEnv) time.Duration
		heal   func(t *testing.T, f *faultEnv)
		// emptied: Redis came back without its data.
		emptied bool
	}{
		{
			name: "SIGKILL mid-scrape, restarted empty", keys: 20000,
			// A small COUNT makes the read thousands of round trips, so the
			// kill lands in the middle of it.
			// Scan mode: every scrape is a full read, so there is a SCAN
			// under way to interrupt (in track mode only the first is).
			args: []string{"--redis.scan-count=2", "--redis.batch-size=5", "--redis.read-mode=scan"},
			inject: func(t *testing.T, f *faultEnv) time.Duration {
				before := f.redis.CommandCalls("scan")
				done := make(chan fetched, 1)
				go func() {
					done <- fetch(&http.Client{Timeout: 60 * time.Second}, f.e.URL+"/metrics",
						map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "60"})
				}()
				eventually(t, "the scrape's SCAN under way", func() bool { return f.redis.CommandCalls("scan")-before >= 50 })
				f.redis.Stop()
				res := <-done
				if res.err != nil {
					t.Fatalf("scrape while Redis was killed: %v", res.err)
				}
				r := toResult(t, res)
				if redisUp(r) {
					t.Fatal("the read finished before the kill: the test did not kill Redis mid-scrape")
				}
				assertRedisDownHonestly(t, r)
				return 3 * time.Second // and one more while it is down
			},
			heal:    func(t *testing.T, f *faultEnv) { f.redis.Start() },
			emptied: true,
		},
		{
			name: "CLIENT PAUSE ALL past the deadline",
			inject: func(t *testing.T, f *faultEnv) time.Duration {
				// The pause outlasts the scrape's 3s budget; it ends by itself.
				if _, err := f.admin.Do("CLIENT", "PAUSE", 6000, "ALL"); err != nil {
					t.Fatal(err)
				}
				return 3 * time.Second
			},
			heal: func(t *testing.T, f *faultEnv) {},
		},
		{
			name: "DEBUG SLEEP past the deadline",
			inject: func(t *testing.T, f *faultEnv) time.Duration {
				sleeper := f.redis.Conn(redis.DialReadTimeout(30 * time.Second))
				go func() { _, _ = sleeper.Do("DEBUG", "SLEEP", 6) }()
				// Scrape only once Redis has stopped answering.
				eventually(t, "Redis asleep", func() bool {
					c, err := redis.Dial("tcp", f.redis.Addr(), redis.DialReadTimeout(200*time.Millisecond))
					if err != nil {
						return false
					}
					defer c.Close()
					_, err = c.Do("PING")
					return err != nil
				})
				return 3 * time.Second
			},
			heal: func(t *testing.T, f *faultEnv) {},
		},
		{
			name: "slow link (proxy latency)", viaProxy: true,
			inject: func(t *testing.T, f *faultEnv) time.Duration {
				f.proxy.SetLatency(4 * time.Second)
				return 3 * time.Second
			},
			heal: func(t *testing.T, f *faultEnv) { f.proxy.SetLatency(0) },
		},
		{
			name: "connections cut mid-scrape (proxy)", viaProxy: true, keys: 3000,
			// Scan mode: every scrape is a full read, so there is a SCAN
			// under way to interrupt (in track mode only the first is).
			args: []string{"--redis.scan-count=2", "--redis.batch-size=5", "--redis.read-mode=scan"},
			inject: func(t *testing.T, f *faultEnv) time.Duration {
				// Slow the read down so that it is surely running when cut.
				f.proxy.SetLatency(20 * time.Millisecond)
				before := f.redis.CommandCalls("scan")
				done := make(chan fetched, 1)
				go func() {
					done <- fetch(&http.Client{Timeout: 60 * time.Second}, f.e.URL+"/metrics",
						map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "60"})
				}()
				eventually(t, "the scrape's SCAN under way", func() bool { return f.redis.CommandCalls("scan")-before >= 5 })
				if n := f.proxy.CutAll(); n == 0 {
					t.Fatal("no connection to cut")
				}
				res := <-done
				if res.err != nil {
					t.Fatalf("scrape while its connection was cut: %v", res.err)
				}
				r := toResult(t, res)
				if redisUp(r) {
					t.Fatal("the read finished before the cut")
				}
				assertRedisDownHonestly(t, r)
				f.proxy.SetLatency(0)
				return 0
			},
			heal: func(t *testing.T, f *faultEnv) {},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultEnv(t, tc.keys, tc.viaProxy, tc.args...)
			before := scrapeBy(t, f.e, 10*time.Second)
			if !redisUp(before) {
				t.Fatalf("Redis down before the fault:\n%s", before.Body)
			}
			wantTenants := tc.keys
			if wantTenants == 0 {
				wantTenants = 3
			}
			if n := len(before.LabelValues("billing_usage", "tenant_id")); n != wantTenants {
				t.Fatalf("%d tenants before the fault, want %d", n, wantTenants)
			}

			if budget := tc.inject(t, f); budget > 0 {
				assertRedisDownHonestly(t, scrapeBy(t, f.e, budget))
			}
			tc.heal(t, f)

			r := pollScrape(t, f.e, "billing_redis_up 1 after the fault", redisUp)
			if tc.emptied {
				for _, name := range perTenantFamilies {
					if _, ok := r.Families[name]; ok {
						t.Errorf("%s exported from an empty Redis:\n%.500s", name, r.Lines(name))
					}
				}
				if got := r.MustValue(t, "billing_redis_usage_keys"); got != 0 {
					t.Errorf("billing_redis_usage_keys = %v on an empty Redis", got)
				}
				f.redis.HSet("usage:new:"+period.At(time.Now(), time.UTC).ID, "messages", 7)
				r = pollScrape(t, f.e, "the new tenant", func(r *scrapetest.Result) bool { return redisUp(r) })
				if got := r.MustValue(t, "billing_usage", "tenant_id", "new", "metric_type", "messages"); got != 7 {
					t.Errorf("new tenant's messages = %v, want 7", got)
				}
				if n := len(r.LabelValues("billing_usage", "tenant_id")); n != 1 {
					t.Errorf("%d tenants after the restart, want 1", n)
				}
			} else if a, b := before.Lines("billing_usage{"), r.Lines("billing_usage{"); a != b {
				t.Errorf("usage after recovery differs from before the fault")
			}
			scrapetest.PromtoolCheck(t, r.Body)
		})
	}
}

// faultEnv is a redis-server, optionally a proxy in front of it, and an
// exporter reading it.
type faultEnv struct {
	redis *testserver.Redis
	proxy *testserver.FaultProxy
	admin redis.Conn // a direct connection to Redis, for faults
	e     *exporter
}

func newFaultEnv(t *testing.T, keys int, viaProxy bool, args ...string) *faultEnv {
	t.Helper()
	f := &faultEnv{redis: testserver.StartRedis(t)}
	f.admin = f.redis.Conn(redis.DialReadTimeout(30 * time.Second))
	if keys == 0 {
		cur := period.At(time.Now(), time.UTC).ID
		f.redis.HSet("usage:1:"+cur, "messages", 4250, "storage", 1048576, "users", 3, "whatsappSessions", 1)
		f.redis.HSet("usage:2:"+cur, "messages", 10)
		f.redis.HSet("usage:3:"+cur, "users", 2)
	} else {
		seedTenants(t, f.admin, keys)
	}
	addr := f.redis.Addr()
	if viaProxy {
		f.proxy = testserver.StartFaultProxy(t, addr)
		addr = f.proxy.Addr()
	}
	f.e = startExporter(t, nil, append([]string{"--redis.addr=" + addr, "--redis.dial-timeout=1s"}, args...)...)
	return f
}

// TestRedisPasswordChanged: the exporter reads its password file at start.
// When Redis' password changes under it, new connections fail AUTH: the
// scrape says billing_redis_up 0 (by its deadline) and the log says why,
// without the password; when the password is changed back, the exporter
// recovers by itself.
func TestRedisPasswordChanged(t *testing.T) {
	const (
		password = "first-pw-4d1c0e"
		rotated  = "rotated-pw-9b7a21"
	)
	r := testserver.StartRedis(t, "--requirepass", password)
	admin := r.Conn(redis.DialPassword(password))
	cur := period.At(time.Now(), time.UTC).ID
	if _, err := admin.Do("HSET", "usage:1:"+cur, "messages", 42); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, nil, "--redis.addr="+r.Addr(),
		"--redis.password-file="+writeFile(t, "redis-password", password+"\n"), "--log.level=debug")
	if got := scrapeBy(t, e, 5*time.Second).MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 42 {
		t.Fatalf("messages = %v", got)
	}

	if _, err := admin.Do("CONFIG", "SET", "requirepass", rotated); err != nil {
		t.Fatal(err)
	}
	// Connections authenticated before the change stay authenticated (that
	// is Redis); the exporter's are closed, as a Redis restart or an idle
	// timeout would, so that it has to authenticate again.
	killExporterClients(t, admin)
	// Every scrape from now on is honest; once the exporter has found its
	// pooled connection dead and dialled again, the log says why it fails.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(e.Output(), "WRONGPASS") {
		assertRedisDownHonestly(t, scrapeBy(t, e, 3*time.Second))
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say that authentication failed:\n%s", e.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	assertRedisDownHonestly(t, scrapeBy(t, e, 3*time.Second))

	if _, err := admin.Do("CONFIG", "SET", "requirepass", password); err != nil {
		t.Fatal(err)
	}
	got := pollScrape(t, e, "recovery once the password is back", redisUp)
	if v := got.MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); v != 42 {
		t.Errorf("messages after recovery = %v", v)
	}
	for _, secret := range []string{password, rotated} {
		if strings.Contains(e.Output(), secret) {
			t.Errorf("a Redis password appears in the logs")
		}
	}
}

// plansQueryWithFault is the default plans query behind a switch: it
// sleeps fault_delay.delay seconds first, so a test can make PostgreSQL
// slow and fast again without restarting anything.
const plansQueryWithFault = `
plans_query: |
  WITH fault AS MATERIALIZED (SELECT pg_sleep(delay) FROM fault_delay)
  SELECT q.* FROM (
    SELECT t.id AS tenant_id, COALESCE(p.id, t.plan_id) AS plan_id, p.name AS plan_name,
           p.max_messages AS "limit_messages", p.max_storage_bytes AS "limit_storage",
           p.max_users AS "limit_users", p.max_whatsapp_sessions AS "limit_whatsappSessions"
    FROM tenants t FULL OUTER JOIN plans p ON p.id = t.plan_id
  ) q, fault
`

// TestPostgresFaults: PostgreSQL stopped, slow past the scrape deadline,
// blocked by a lock on tenants, or restarted: every scrape during the fault
// answers by its deadline with billing_postgres_up 0, Redis still up, the
// last plans kept (limits, percentages, defaults and plan of every tenant
// exactly as before) and billing_plans_age_seconds growing; afterwards the
// plans are fresh again, without restarting the exporter.
func TestPostgresFaults(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(plansSQL + `CREATE TABLE fault_delay (delay float8 NOT NULL); INSERT INTO fault_delay VALUES (0);`)
	e := startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()},
		"--redis.addr="+redis.Addr(),
		"--config.file="+writeFile(t, "config.yml", plansQueryWithFault+defaultsYAML),
		"--plans.refresh-interval=0") // each scrape reads the plans, within its deadline

	fresh := scrapeBy(t, e, 10*time.Second)
	checkJoined(t, fresh)
	if got := fresh.MustValue(t, "billing_postgres_up"); got != 1 {
		t.Fatalf("billing_postgres_up = %v before any fault", got)
	}

	var lock *sql.Tx
	cases := []struct {
		name         string
		inject, heal func(t *testing.T)
	}{
		{"stopped", func(t *testing.T) { pg.Stop() }, func(t *testing.T) { pg.Start() }},
		{"query slower than the deadline",
			func(t *testing.T) { pg.Exec(`UPDATE fault_delay SET delay = 30`) },
			func(t *testing.T) { pg.Exec(`UPDATE fault_delay SET delay = 0`) }},
		{"tenants locked by another session",
			func(t *testing.T) { lock = lockTable(t, pg.DSN(), "tenants") },
			func(t *testing.T) {
				if err := lock.Rollback(); err != nil {
					t.Fatal(err)
				}
			}},
		{"restarted", func(t *testing.T) { pg.Stop(); pg.Start() }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.inject(t)
			if tc.heal != nil {
				var lastAge float64 = -1
				for i := range 2 {
					r := scrapeBy(t, e, 3*time.Second)
					if got := r.MustValue(t, "billing_postgres_up"); got != 0 {
						t.Errorf("scrape %d: billing_postgres_up = %v during the fault", i, got)
					}
					if got := r.MustValue(t, "billing_redis_up"); got != 1 {
						t.Errorf("scrape %d: billing_redis_up = %v: a PostgreSQL fault took Redis' numbers with it", i, got)
					}
					assertSamePlans(t, fresh, r)
					age := r.MustValue(t, "billing_plans_age_seconds")
					if age <= lastAge {
						t.Errorf("billing_plans_age_seconds went from %v to %v during the fault: it must grow", lastAge, age)
					}
					lastAge = age
					scrapetest.PromtoolCheck(t, r.Body)
					time.Sleep(1100 * time.Millisecond)
				}
				tc.heal(t)
			}
			r := pollScrape(t, e, "billing_postgres_up 1 after the fault", func(r *scrapetest.Result) bool {
				v, ok := r.Value("billing_postgres_up")
				return ok && v == 1
			})
			assertSamePlans(t, fresh, r)
			if age := r.MustValue(t, "billing_plans_age_seconds"); age >= 1 {
				t.Errorf("billing_plans_age_seconds = %v after recovery", age)
			}
			// No query of the exporter's is left behind in PostgreSQL: each
			// was cancelled at its scrape's deadline.
			eventually(t, "no plans query left running", func() bool { return runningPlansQueries(t, pg.DSN()) == 0 })
		})
	}
}

// assertSamePlans: the plan-derived families of r are those of want, to
// the sample.
func assertSamePlans(t *testing.T, want, r *scrapetest.Result) {
	t.Helper()
	for _, name := range planFamilies {
		if a, b := want.Lines(name+"{"), r.Lines(name+"{"); a != b {
			t.Errorf("%s changed:\nbefore:\n%s\nnow:\n%s", name, a, b)
		}
	}
}

// lockTable opens a transaction holding an ACCESS EXCLUSIVE lock on table,
// which blocks every reader until it ends.
func lockTable(t *testing.T, dsn, table string) *sql.Tx {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	if _, err := tx.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return tx
}

// runningPlansQueries counts the sessions running the plans query (other
// than this one).
func runningPlansQueries(t *testing.T, dsn string) int {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRow(`SELECT count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%fault_delay%'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAbandonedScrapesNoPileUp: ten scrapes in a row whose client gives up
// after 1s while Redis is slow. The exporter's deadline (from the header)
// is far away, so only the client's leaving can stop each read: Redis
// commands stop once the last client has gone (INFO commandstats stops
// growing), and the exporter's goroutines and its Redis connections return
// to their baseline.
func TestAbandonedScrapesNoPileUp(t *testing.T) {
	cases := []struct {
		name     string
		viaProxy bool
		slow     func(t *testing.T, f *faultEnv) (stop func())
	}{
		{"proxy latency", true, func(t *testing.T, f *faultEnv) func() {
			f.proxy.SetLatency(300 * time.Millisecond)
			return func() { f.proxy.SetLatency(0) }
		}},
		{"DEBUG SLEEP", false, func(t *testing.T, f *faultEnv) func() {
			// Redis sleeps 300ms at a time, over and over, from its own
			// connection, until stopped.
			sleeper := f.redis.Conn(redis.DialReadTimeout(30 * time.Second))
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := sleeper.Do("DEBUG", "SLEEP", "0.3"); err != nil {
						return
					}
				}
			}()
			return func() { close(stop); <-done }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Scan mode: every scrape is a full read, slow enough with a
			// slow Redis to be abandoned (in track mode a scrape after the
			// first is two round trips).
			f := newFaultEnv(t, 5000, tc.viaProxy, "--redis.scan-count=10", "--redis.batch-size=10", "--redis.read-mode=scan")
			// Baselines, after a scrape has warmed the pools up.
			scrapeBy(t, f.e, 10*time.Second)
			baseGoroutines := metricValue(t, f.e, "go_goroutines")
			baseClients := exporterClients(t, f.admin)
			// The exporter's commands: its reads, its connection checks and
			// its handshakes. INFO commandstats counts itself too (after it
			// has answered): each of ours is taken off.
			ours := 0
			exporterCalls := func() int {
				n := commandCalls(t, f.admin, "scan", "hgetall", "info", "ping", "client|setname") - ours
				ours++
				return n
			}

			stop := tc.slow(t, f)
			startCalls := exporterCalls()
			for i := range 10 {
				res := fetch(&http.Client{Timeout: time.Second}, f.e.URL+"/metrics",
					map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "30"})
				if res.err == nil {
					t.Fatalf("scrape %d answered (%d) within 1s although Redis is slow: the test is not testing abandonment", i, res.status)
				}
			}
			if grew := exporterCalls() - startCalls; grew == 0 {
				t.Fatal("the abandoned scrapes sent no command: nothing was tested")
			}
			// Commands stop: two readings a second and a half apart (more
			// than the slowness of one round trip) agree.
			var calls []int
			eventually(t, "Redis commands stopped after the clients left", func() bool {
				a := exporterCalls()
				time.Sleep(1500 * time.Millisecond)
				b := exporterCalls()
				calls = append(calls, b-a)
				return a == b
			})
			stop()
			eventually(t, "the exporter's Redis connections back to baseline", func() bool {
				return exporterClients(t, f.admin) <= baseClients
			})
			var goroutines float64
			eventually(t, "go_goroutines back to baseline", func() bool {
				goroutines = metricValue(t, f.e, "go_goroutines")
				return goroutines <= baseGoroutines
			})
			t.Logf("commands per 1.5s while settling: %v; goroutines %v (baseline %v); exporter connections %d (baseline %d)",
				calls, goroutines, baseGoroutines, exporterClients(t, f.admin), baseClients)
		})
	}
}

// TestMaxRequestsEndToEnd: with --web.max-requests=N, N+1 concurrent scrapes
// while Redis is slow: N wait for the (shared) read and get 200, one is
// turned away at once with 503.
func TestMaxRequestsEndToEnd(t *testing.T) {
	const n = 3
	f := newFaultEnv(t, 0, true, "--web.max-requests="+strconv.Itoa(n))
	scrapeBy(t, f.e, 10*time.Second)
	f.proxy.SetLatency(time.Second)
	results := make(chan fetched, n+1)
	for range n + 1 {
		go func() {
			results <- fetch(&http.Client{Timeout: 60 * time.Second}, f.e.URL+"/metrics",
				map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "30"})
		}()
	}
	codes := map[int]int{}
	for range n + 1 {
		r := <-results
		if r.err != nil {
			t.Fatalf("scrape: %v", r.err)
		}
		codes[r.status]++
		if r.status == http.StatusServiceUnavailable && !strings.Contains(string(r.body), "web.max-requests") {
			t.Errorf("the 503 does not say why: %s", r.body)
		}
	}
	if codes[http.StatusOK] != n || codes[http.StatusServiceUnavailable] != 1 {
		t.Errorf("statuses %v, want %d × 200 and 1 × 503", codes, n)
	}
	f.proxy.SetLatency(0)
	if r := scrapeBy(t, f.e, 10*time.Second); !redisUp(r) {
		t.Error("Redis down after the slow scrapes")
	}
}

// TestAPIRequestCutByTimeout: an API request whose Redis read hangs (the
// Redis read timeout set far longer) is answered 503 problem+json by the
// API's own 10s request timeout, before the client's 30s.
func TestAPIRequestCutByTimeout(t *testing.T) {
	f := newFaultEnv(t, 0, true, "--redis.read-timeout=120s")
	if r := fetch(http.DefaultClient, f.e.URL+"/api/v1/tenants/1/usage", nil); r.status != http.StatusOK {
		t.Fatalf("usage before the fault: %d %s", r.status, r.body)
	}
	f.proxy.SetLatency(time.Minute)
	defer f.proxy.CutAll()
	defer f.proxy.SetLatency(0)
	r := fetch(&http.Client{Timeout: 30 * time.Second}, f.e.URL+"/api/v1/tenants/1/usage", nil)
	if r.err != nil {
		t.Fatalf("no answer before the client's 30s: %v", r.err)
	}
	if r.status != http.StatusServiceUnavailable || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("status %d %s: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if !strings.Contains(string(r.body), "usage-unavailable") {
		t.Errorf("body %s", r.body)
	}
}

// TestPooledConnectionCheckHonoursDeadline: a pooled connection idle for a
// second or more is checked with a PING before use (internal/redis/conn's
// TestOnBorrow). That PING is sent with redigo's Do, under the connection's
// read timeout only, not under the scrape's context: when Redis stops
// answering, the scrape itself still answers by its deadline (the shared
// read is abandoned), but the reading goroutine and its connection stay
// blocked for up to --redis.read-timeout after the scrape has gone. With
// the read timeout long, they outlive the fault by far.
func TestPooledConnectionCheckHonoursDeadline(t *testing.T) {
	f := newFaultEnv(t, 0, true, "--redis.read-timeout=120s")
	scrapeBy(t, f.e, 10*time.Second)
	baseGoroutines := metricValue(t, f.e, "go_goroutines")
	time.Sleep(1500 * time.Millisecond) // the pooled connections are now checked before use
	f.proxy.SetLatency(time.Minute)
	assertRedisDownHonestly(t, scrapeBy(t, f.e, 2*time.Second))
	// Redis answers at once again through new connections; what the
	// abandoned scrape started must end with it, not 120s later.
	f.proxy.SetLatency(0)
	deadline := time.Now().Add(20 * time.Second)
	for {
		g := metricValue(t, f.e, "go_goroutines")
		if g <= baseGoroutines {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("go_goroutines %v, baseline %v, 20s after the scrape was abandoned", g, baseGoroutines)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
