package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// plansData is the plans issue's acceptance data, as SQL and as a plans
// file: the two sources must export the same metrics.
const (
	plansSQL = `
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions)
VALUES (1, 'starter', 5000, NULL, NULL, NULL);
INSERT INTO tenants (id, name, plan_id) VALUES (1, 'one', 1), (2, 'two', 1), (3, 'three', NULL);`
	plansYAML = `
plans:
  - {id: 1, name: starter, limits: {messages: 5000}}
tenants:
  - {id: 1, plan: 1}
  - {id: 2, plan: 1}
  - {id: 3}
`
	defaultsYAML = `
defaults:
  limits: {messages: 1000, storage: 104857600, users: 2, whatsappSessions: 1}
`
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func seedPlansIssueUsage(t *testing.T, redis *testserver.Redis) {
	cur := period.At(time.Now(), time.UTC)
	redis.HSet("usage:1:"+cur.ID, "messages", 4250)
	redis.HSet("usage:3:"+cur.ID, "messages", 10)
}

// joinedSeries are the series the plans issue pins down.
var joinedSeries = []struct {
	name   string
	labels []string
	want   float64
}{
	{"billing_usage_percentage", []string{"tenant_id", "1", "limit_type", "messages"}, 85},
	{"billing_usage_limit", []string{"tenant_id", "1", "limit_type", "messages"}, 5000},
	{"billing_usage_percentage", []string{"tenant_id", "2", "limit_type", "messages"}, 0},
	{"billing_usage_percentage", []string{"tenant_id", "3", "limit_type", "messages"}, 1},
	{"billing_usage_limit", []string{"tenant_id", "3", "limit_type", "users"}, 2},
	{"billing_tenant_using_defaults", []string{"tenant_id", "3"}, 1},
	{"billing_tenant_using_defaults", []string{"tenant_id", "1"}, 0},
	{"billing_tenant_using_defaults", []string{"tenant_id", "2"}, 0},
	{"billing_tenant_plan_info", []string{"tenant_id", "1", "plan_id", "1", "plan_name", "starter"}, 1},
	{"billing_tenants_per_plan", []string{"plan_id", "1", "plan_name", "starter"}, 2},
	{"billing_tenants_per_plan", []string{"plan_id", "none"}, 1},
	{"billing_tenants_over_threshold", []string{"limit_type", "messages", "threshold", "80"}, 1},
	{"billing_tenants_over_threshold", []string{"limit_type", "messages", "threshold", "100"}, 0},
}

func checkJoined(t *testing.T, r *scrapetest.Result) {
	t.Helper()
	for _, c := range joinedSeries {
		if got := r.MustValue(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Tenant 1's plan has no storage limit: unlimited, so no series.
	if s := r.Samples("billing_usage_limit", "tenant_id", "1", "limit_type", "storage"); len(s) != 0 {
		t.Error("a limit series for an unlimited type")
	}
}

func TestPlansFromPostgres(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(plansSQL)

	// A password the server ignores (trust auth) but that must never show.
	const password = "pg-s3cret-never-shown"
	dsn := strings.Replace(pg.DSN(), "postgres@", "postgres:"+password+"@", 1)
	e := startExporter(t, nil,
		"--redis.addr="+redis.Addr(),
		"--postgres.dsn-file="+writeFile(t, "dsn", dsn+"\n"),
		"--config.file="+writeFile(t, "config.yml", defaultsYAML),
		"--plans.refresh-interval=0", // each scrape reads the plans
		"--log.level=debug")

	r := e.scrape()
	checkJoined(t, r)
	if got := r.MustValue(t, "billing_postgres_up"); got != 1 {
		t.Errorf("billing_postgres_up = %v", got)
	}
	scrapetest.PromtoolCheck(t, r.Body)

	// PostgreSQL down: same numbers from the last plans read, flagged.
	pg.Stop()
	time.Sleep(1100 * time.Millisecond) // let the plans age pass one second
	r = e.scrape()
	checkJoined(t, r)
	if got := r.MustValue(t, "billing_postgres_up"); got != 0 {
		t.Errorf("billing_postgres_up = %v with PostgreSQL stopped", got)
	}
	if age := r.MustValue(t, "billing_plans_age_seconds"); age < 1 {
		t.Errorf("billing_plans_age_seconds = %v with PostgreSQL stopped, want >= 1", age)
	}

	// Back up: fresh again.
	pg.Start()
	r = e.scrape()
	checkJoined(t, r)
	if got := r.MustValue(t, "billing_postgres_up"); got != 1 {
		t.Errorf("billing_postgres_up = %v after restart", got)
	}
	if age := r.MustValue(t, "billing_plans_age_seconds"); age >= 1 {
		t.Errorf("billing_plans_age_seconds = %v after restart", age)
	}

	landing := get(t, e.URL+"/")
	for what, text := range map[string]string{"metrics": string(r.Body), "landing page": landing, "logs": e.Output()} {
		if strings.Contains(text, password) {
			t.Errorf("the DSN password appears in the %s", what)
		}
	}
	if !strings.Contains(e.Output(), "plans source unreachable") {
		t.Errorf("the logs do not say the plans source was down:\n%s", e.Output())
	}
}

func TestPostgresNeverReadGivesNoLimits(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	closedPort := testserver.FreePort(t)
	e := startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=postgres://postgres@127.0.0.1:" + itoa(closedPort) + "/postgres?connect_timeout=1"},
		"--redis.addr="+redis.Addr(),
		"--config.file="+writeFile(t, "config.yml", defaultsYAML))
	r := e.scrape()
	if got := r.MustValue(t, "billing_postgres_up"); got != 0 {
		t.Errorf("billing_postgres_up = %v", got)
	}
	for _, name := range []string{"billing_usage_limit", "billing_usage_percentage", "billing_tenant_using_defaults", "billing_tenants_per_plan", "billing_plans_age_seconds"} {
		if _, ok := r.Families[name]; ok {
			t.Errorf("%s exported although plans were never read", name)
		}
	}
	if got := r.MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 4250 {
		t.Errorf("usage = %v, want 4250 (usage does not depend on plans)", got)
	}
	if !strings.Contains(e.Output(), "never been read") {
		t.Errorf("the logs do not say why no limits are exported:\n%s", e.Output())
	}
}

func TestPlansFileMatchesPostgres(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(plansSQL)
	config := writeFile(t, "config.yml", defaultsYAML)

	fromPG := startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()},
		"--redis.addr="+redis.Addr(), "--config.file="+config).scrape()
	fromFile := startExporter(t, nil,
		"--redis.addr="+redis.Addr(), "--config.file="+config,
		"--plans.file="+writeFile(t, "plans.yml", plansYAML)).scrape()
	checkJoined(t, fromFile)
	for _, name := range []string{"billing_usage", "billing_usage_limit", "billing_usage_percentage", "billing_tenant_using_defaults",
		"billing_tenant_plan_info", "billing_tenants_per_plan", "billing_tenants_over_threshold"} {
		if a, b := fromPG.Lines(name+"{"), fromFile.Lines(name+"{"); a != b {
			t.Errorf("%s differs:\npostgres:\n%s\nfile:\n%s", name, a, b)
		}
	}
	if _, ok := fromFile.Families["billing_postgres_up"]; ok {
		t.Error("billing_postgres_up exported without PostgreSQL")
	}
}

func TestPlansConfigErrorsExit(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		names string
	}{
		{"invalid plans yaml", []string{"--plans.file=" + writeFile(t, "p.yml", "plans: [\n")}, "--plans.file"},
		{"unknown plans field", []string{"--plans.file=" + writeFile(t, "p.yml", "plans:\n  - {id: 1, name: a, limitz: {}}\n")}, "p.yml:2"},
		{"unknown config field", []string{"--config.file=" + writeFile(t, "c.yml", "thresholdz: [1]\n")}, "c.yml:1"},
		{"both plans sources", []string{"--plans.file=" + writeFile(t, "p.yml", plansYAML), "--postgres.dsn-file=" + writeFile(t, "dsn", "postgres://x@127.0.0.1/x")}, "both set"},
		{"defaults twice", []string{"--plans.file=" + writeFile(t, "p.yml", plansYAML+defaultsYAML), "--config.file=" + writeFile(t, "c.yml", defaultsYAML)}, "default limits"},
		{"unreadable dsn file", []string{"--postgres.dsn-file=/nonexistent/dsn"}, "--postgres.dsn-file"},
		{"demo with postgres", []string{"--demo", "--postgres.dsn-file=" + writeFile(t, "dsn", "postgres://x@127.0.0.1/x")}, "--demo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runToExit(t, tc.args...)
			if code == 0 {
				t.Fatal("exited 0")
			}
			if last := lastLine(stderr); !strings.Contains(last, tc.names) {
				t.Errorf("last line %q does not name %q", last, tc.names)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	e := startExporter(t, nil, "--demo")
	r := e.scrape()
	for _, name := range []string{
		"billing_usage", "billing_usage_limit", "billing_usage_percentage", "billing_tenant_using_defaults",
		"billing_tenant_plan_info", "billing_tenants_per_plan", "billing_tenants_over_threshold",
		"billing_period_start_timestamp_seconds", "billing_period_end_timestamp_seconds",
		"billing_redis_up", "billing_redis_usage_keys", "billing_redis_connections_active",
		"billing_redis_operation_duration_seconds", "billing_exporter_scrape_duration_seconds",
		"billing_exporter_invalid_data_items", "billing_exporter_build_info", "billing_plans_age_seconds",
	} {
		if _, ok := r.Families[name]; !ok {
			t.Errorf("demo does not serve %s", name)
		}
	}
	if n := len(r.LabelValues("billing_usage", "tenant_id")); n < 50 {
		t.Errorf("demo has %d tenants, want about fifty", n)
	}
	if got := r.MustValue(t, "billing_tenants_per_plan", "plan_id", "none"); got < 3 {
		t.Errorf("tenants without a plan = %v, want a few", got)
	}
	scrapetest.PromtoolCheck(t, r.Body)
	// Usage grows between scrapes.
	before := r.MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages")
	time.Sleep(1500 * time.Millisecond)
	if after := e.scrape().MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); after <= before {
		t.Errorf("demo usage did not grow: %v then %v", before, after)
	}
	if landing := get(t, e.URL+"/"); !strings.Contains(landing, `href="/api/v1/tenants?limit_type=messages&min_percentage=80"`) {
		t.Errorf("the landing page does not link the near-limit list:\n%s", landing)
	}
	if !strings.Contains(e.Output(), "demo running") {
		t.Errorf("the demo does not say where to look:\n%s", e.Output())
	}
	stopGracefully(t, e)
}

// TestVanishedOrInvalidPlanIsNotDefaults deletes a plan row that tenants
// still point at (no foreign key, as in many schemas) and breaks another
// plan's limit, on real PostgreSQL and Redis. The vanished plan's tenants
// keep its plan id, are not on default limits and have no limit series
// (not the defaults'); the broken plan keeps its tenants and its other
// limits, only the broken one unreadable; the rows are counted.
func TestVanishedOrInvalidPlanIsNotDefaults(t *testing.T) {
	redis := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC)
	for _, id := range []string{"1", "3", "4", "6"} {
		redis.HSet("usage:"+id+":"+cur.ID, "messages", 900, "users", 3)
	}
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(`ALTER TABLE tenants DROP CONSTRAINT tenants_plan_id_fkey`)
	sample, err := os.ReadFile("examples/sample-data.sql")
	if err != nil {
		t.Fatal(err)
	}
	pg.Exec(string(sample))
	pg.Exec(`DELETE FROM plans WHERE id = 3; UPDATE plans SET max_users = -1 WHERE id = 2`)

	e := startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()},
		"--redis.addr="+redis.Addr(),
		"--config.file="+writeFile(t, "config.yml", defaultsYAML))
	r := e.scrape()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"billing_tenant_using_defaults", []string{"tenant_id", "6"}, 0}, // plan 3 deleted
		{"billing_tenant_using_defaults", []string{"tenant_id", "4"}, 0}, // plan 2 invalid
		{"billing_tenant_using_defaults", []string{"tenant_id", "3"}, 1}, // no plan: defaults
		{"billing_tenant_plan_info", []string{"tenant_id", "6", "plan_id", "3"}, 1},
		{"billing_tenant_plan_info", []string{"tenant_id", "4", "plan_id", "2", "plan_name", "pro"}, 1},
		{"billing_tenants_per_plan", []string{"plan_id", "3"}, 1},
		{"billing_tenants_per_plan", []string{"plan_id", "2"}, 2},
		{"billing_tenants_per_plan", []string{"plan_id", "none"}, 1},
		{"billing_usage_limit", []string{"tenant_id", "1", "limit_type", "messages"}, 5000},
		{"billing_usage_limit", []string{"tenant_id", "3", "limit_type", "messages"}, 1000},
		{"billing_usage_limit", []string{"tenant_id", "4", "limit_type", "messages"}, 50000}, // plan 2's good limit
		{"billing_usage_percentage", []string{"tenant_id", "4", "limit_type", "messages"}, 1.8},
		{"billing_exporter_invalid_data_items", []string{"source", "postgres", "reason", "unknown_plan"}, 1},
		{"billing_exporter_invalid_data_items", []string{"source", "postgres", "reason", "negative_limit"}, 2},
	} {
		if got := r.MustValue(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if s := r.Samples("billing_usage_limit", "tenant_id", "6"); len(s) != 0 {
		t.Errorf("tenant 6 on a vanished plan has %d limit series, want none", len(s))
	}
	if s := r.Samples("billing_usage_percentage", "tenant_id", "6"); len(s) != 0 {
		t.Errorf("tenant 6 on a vanished plan has %d percentage series, want none", len(s))
	}
	for _, name := range []string{"billing_usage_limit", "billing_usage_percentage"} {
		if s := r.Samples(name, "tenant_id", "4", "limit_type", "users"); len(s) != 0 {
			t.Errorf("tenant 4 has %s for its unreadable users limit: %v", name, s)
		}
	}

	body := get(t, e.URL+"/api/v1/tenants/6/usage")
	for _, want := range []string{`"plan":{"id":"3","name":""}`, `"using_defaults":false`, `"limits_known":false`, `"limit":null`} {
		if !strings.Contains(body, want) {
			t.Errorf("API for tenant 6 lacks %s:\n%s", want, body)
		}
	}
}

// TestPlansRefreshFromPostgres: the plans are refreshed in the background.
// A change in PostgreSQL shows within the refresh interval without a
// reload, and on the first scrape after POST /-/reload with an interval
// too long to have refreshed meanwhile; PostgreSQL down keeps the last
// plans, flagged, until a refresh reads them again.
func TestPlansRefreshFromPostgres(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(plansSQL)
	start := func(interval string) *exporter {
		return startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()},
			"--redis.addr="+redis.Addr(), "--plans.refresh-interval="+interval,
			"--config.file="+writeFile(t, "config.yml", defaultsYAML))
	}
	limitOf1 := func(r *scrapetest.Result) float64 {
		return r.MustValue(t, "billing_usage_limit", "tenant_id", "1", "limit_type", "messages")
	}
	short, long := start("200ms"), start("1h")
	checkJoined(t, short.scrape())
	checkJoined(t, long.scrape())

	pg.Exec(`UPDATE plans SET max_messages = 8500 WHERE id = 1`)
	r := pollScrape(t, short, "the new limit within the refresh interval", func(r *scrapetest.Result) bool { return limitOf1(r) == 8500 })
	if got := r.MustValue(t, "billing_usage_percentage", "tenant_id", "1", "limit_type", "messages"); got != 50 {
		t.Errorf("percentage = %v after the change, want 50", got)
	}
	if got := limitOf1(long.scrape()); got != 5000 {
		t.Errorf("limit = %v before the reload with a 1h interval, want the last refresh's 5000", got)
	}
	resp, err := http.Post(long.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /-/reload: %d", resp.StatusCode)
	}
	if got := limitOf1(long.scrape()); got != 8500 {
		t.Errorf("limit = %v on the first scrape after the reload, want 8500", got)
	}

	pg.Stop()
	r = pollScrape(t, short, "billing_postgres_up 0 with PostgreSQL stopped", func(r *scrapetest.Result) bool {
		return r.MustValue(t, "billing_postgres_up") == 0
	})
	if got := limitOf1(r); got != 8500 {
		t.Errorf("limit = %v with PostgreSQL stopped, want the last plans' 8500", got)
	}
	age := r.MustValue(t, "billing_plans_age_seconds")
	pollScrape(t, short, "the plans age growing", func(r *scrapetest.Result) bool {
		return r.MustValue(t, "billing_plans_age_seconds") > age && limitOf1(r) == 8500
	})
	pg.Start()
	pollScrape(t, short, "billing_postgres_up 1 after the restart", func(r *scrapetest.Result) bool {
		return r.MustValue(t, "billing_postgres_up") == 1
	})
}
