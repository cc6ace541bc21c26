package monitoring

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// The live test's data. Plan 1 ("starter") allows 5000 messages and one
// WhatsApp session. Tenants 1 and 2 are on it, tenant 3 has no plan (the
// default limits apply) and tenant 4, also on plan 1, is over its message
// limit, so that "tenants at or over a limit" has someone to show.
const (
	livePlansSQL = `
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions)
VALUES (1, 'starter', 5000, 1073741824, 5, 1);
INSERT INTO tenants (id, name, plan_id) VALUES (1, 'one', 1), (2, 'two', 1), (3, 'three', NULL), (4, 'four', 1);`
	liveConfigYAML = `
defaults:
  limits: {messages: 1000, storage: 104857600, users: 2, whatsappSessions: 1}
`
	// liveWait bounds every wait for something Prometheus must see; the
	// scrape and evaluation intervals are 1 s.
	liveWait = 60 * time.Second
)

// liveVars are the values the Grafana variables of the dashboards get.
var liveVars = map[string]string{
	"tenant_id":       "1",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__interval_ms":   "15000",
	"datasource":      "prometheus",
}

// TestLiveMonitoring runs the shipped rules and dashboards on a real
// Prometheus that scrapes the real exporter (over real Redis and PostgreSQL)
// and a stand-in for the SaaS backend's instrumentation.
func TestLiveMonitoring(t *testing.T) {
	bin := buildExporterBinary(t)

	redis := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC)
	// The seed's Test 3: tenant 1 at 85 % of its 5000 messages. It also
	// uses its one WhatsApp session (100 %), which is why the backend
	// stand-in blocks it on whatsappSessions.
	redis.HSet("usage:1:"+cur.ID, "messages", 4250, "storage", 104857600, "users", 3, "whatsappSessions", 1)
	redis.HSet("usage:3:"+cur.ID, "messages", 10)
	redis.HSet("usage:4:"+cur.ID, "messages", 6000)

	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, repoPath(t, "examples/schema.sql"))
	pg.Exec(livePlansSQL)

	exp := startLiveExporter(t, bin,
		"--redis.addr="+redis.Addr(),
		"--redis.dial-timeout=500ms",
		"--postgres.dsn-file="+writeLiveFile(t, "dsn", pg.DSN()+"\n"),
		"--config.file="+writeLiveFile(t, "config.yml", liveConfigYAML))
	backend := startBackendStandIn(t)

	prom := testserver.StartPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: billing_exporter
    static_configs:
      - targets: [%q]
  - job_name: backend
    static_configs:
      - targets: [%q]
`, exp.addr, backend.addr),
		repoPath(t, "alerts/billing.rules.yml"), repoPath(t, "alerts/backend.rules.yml"))

	for _, job := range []string{"billing_exporter", "backend"} {
		expr := fmt.Sprintf(`up{job=%q} == 1`, job)
		if !prom.WaitFor(t, func() bool { return !prom.Query(t, expr).Empty() }, liveWait) {
			t.Fatalf("Prometheus has not scraped job %s successfully after %v (up: %v)", job, liveWait, prom.Query(t, `up`).Series)
		}
	}

	t.Run("rules evaluate without errors", func(t *testing.T) {
		var rules []testserver.Rule
		evaluated := prom.WaitFor(t, func() bool {
			rules = prom.Rules(t)
			return len(rules) > 0 && !slices.ContainsFunc(rules, func(r testserver.Rule) bool { return r.Health == "unknown" })
		}, liveWait)
		if !evaluated {
			t.Fatalf("rules not all evaluated after %v: %+v", liveWait, rules)
		}
		shipped := map[string]bool{}
		for _, a := range loadAlerts(t) {
			shipped[a.Name()] = true
		}
		for _, r := range rules {
			delete(shipped, r.Name)
			if r.Health != "ok" {
				t.Errorf("%s (%s): health %s: %s", r.Name, filepath.Base(r.File), r.Health, r.LastError)
			}
		}
		for name := range shipped {
			t.Errorf("alert %s is in alerts/ but Prometheus did not load it", name)
		}
	})

	t.Run("near limit is pending for tenant 1 only", func(t *testing.T) {
		near := waitForAlert(t, prom, "BillingUsageNearLimit")
		if len(near) != 1 {
			t.Fatalf("BillingUsageNearLimit: want one alert (tenant 1), got %d: %+v", len(near), near)
		}
		a := near[0]
		want := map[string]string{
			"alertname":  "BillingUsageNearLimit",
			"severity":   "warning",
			"limit_type": "messages",
			"tenant_id":  "1",
			"job":        "billing_exporter",
			"instance":   exp.addr,
		}
		checkAlert(t, a, "pending", want)
		if v, err := strconv.ParseFloat(a.Value, 64); err != nil || v != 85 {
			t.Errorf("BillingUsageNearLimit value %q, want 85", a.Value)
		}
		if d := a.Annotations["description"]; !strings.Contains(d, "Tenant 1 ") || !strings.Contains(d, "85.0%") {
			t.Errorf("description %q does not say tenant 1 is at 85.0%%", d)
		}
		if u := a.Annotations["runbook_url"]; !strings.HasSuffix(u, "#billingusagenearlimit") {
			t.Errorf("runbook_url %q", u)
		}
		// The same through the ALERTS series, as a dashboard would see it.
		// Written at the evaluation that updates /api/v1/alerts, committed
		// a moment later.
		alertsExpr := `ALERTS{alertname="BillingUsageNearLimit",alertstate="pending"}`
		var series []testserver.Series
		prom.WaitFor(t, func() bool { series = prom.Query(t, alertsExpr).Series; return len(series) > 0 }, liveWait)
		if len(series) != 1 || series[0].Metric["tenant_id"] != "1" {
			t.Errorf(`ALERTS{alertname="BillingUsageNearLimit",alertstate="pending"}: want tenant 1 only, got %v`, series)
		}

		// Tenant 4 is over its message limit: BillingLimitReached, not
		// NearLimit. Tenant 1 is at its one WhatsApp session.
		reached := alertsByTenant(waitForAlert(t, prom, "BillingLimitReached"))
		if len(reached) != 2 {
			t.Errorf("BillingLimitReached: want tenant 4 (messages) and 1 (whatsappSessions), got %v", reached)
		}
		for key, tenant := range map[string]string{"4/messages": "4", "1/whatsappSessions": "1"} {
			a, ok := reached[key]
			if !ok {
				t.Errorf("BillingLimitReached not pending for %s: %v", key, reached)
				continue
			}
			checkAlert(t, a, "pending", map[string]string{"alertname": "BillingLimitReached", "severity": "warning",
				"limit_type": a.Labels["limit_type"], "tenant_id": tenant, "job": "billing_exporter", "instance": exp.addr})
		}
		// Tenant 3 has no plan.
		noPlan := alertsByTenant(waitForAlert(t, prom, "BillingTenantWithoutPlan"))
		if _, ok := noPlan["3/"]; !ok || len(noPlan) != 1 {
			t.Errorf("BillingTenantWithoutPlan: want tenant 3 only, got %v", noPlan)
		}
	})

	t.Run("backend alerts fire on the backend's counters", func(t *testing.T) {
		// rate(...[5m]) of a few seconds of samples is still small (it is
		// divided by nearly the whole window): wait until both tenants pass
		// the threshold.
		var frequent map[string]testserver.Alert
		prom.WaitFor(t, func() bool {
			frequent = alertsByTenant(alertsNamed(prom.Alerts(t), "BillingLimitExceededFrequent"))
			return len(frequent) >= 2
		}, liveWait)
		if len(frequent) != 2 {
			t.Errorf("BillingLimitExceededFrequent: want tenant 1 (whatsappSessions) and 4 (messages), got %v", frequent)
		}
		for _, key := range []string{"1/whatsappSessions", "4/messages"} {
			a, ok := frequent[key]
			if !ok {
				t.Errorf("BillingLimitExceededFrequent not pending for %s: %v", key, frequent)
				continue
			}
			checkAlert(t, a, "pending", map[string]string{"alertname": "BillingLimitExceededFrequent", "severity": "critical",
				"tenant_id": a.Labels["tenant_id"], "limit_type": a.Labels["limit_type"]})
		}
		errs := waitForAlert(t, prom, "BillingUsageIncrementErrors")
		if len(errs) != 1 {
			t.Fatalf("BillingUsageIncrementErrors: want one alert, got %+v", errs)
		}
		checkAlert(t, errs[0], "pending", map[string]string{"alertname": "BillingUsageIncrementErrors", "severity": "warning",
			"job": "backend", "error_type": "redis_timeout"})
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		queries, err := DashboardQueries(repoPath(t, dashboardsDir))
		if err != nil {
			t.Fatal(err)
		}
		exprs := make([]string, len(queries))
		for i, q := range queries {
			if exprs[i], err = q.Expand(liveVars); err != nil {
				t.Fatal(err)
			}
		}
		// Queries over rates and increases need a few scrapes: wait until
		// every query has data, then report those that never got any.
		results := make([]testserver.QueryResult, len(queries))
		prom.WaitFor(t, func() bool {
			complete := true
			for i := range queries {
				if results[i] = prom.Query(t, exprs[i]); results[i].Empty() {
					complete = false
				}
			}
			return complete
		}, liveWait)
		if slices.ContainsFunc(results, testserver.QueryResult.Empty) {
			t.Log(liveDiagnosis(t, prom))
		}
		for i, q := range queries {
			r := results[i]
			switch {
			case r.Empty():
				t.Errorf("panel %q (%s, %s) returned no data after %v:\n%s", q.PanelTitle, q.File, q.RefID, liveWait, exprs[i])
			case allNaN(r):
				t.Errorf("panel %q (%s, %s) returned only NaN: %v\n%s", q.PanelTitle, q.File, q.RefID, r.Series, exprs[i])
			}
			if len(r.Warnings) > 0 {
				t.Errorf("panel %q (%s, %s): warnings %v", q.PanelTitle, q.File, q.RefID, r.Warnings)
			}
			if q.UsesBackendMetrics() {
				t.Logf("panel %q gets its data from the backend stand-in: %v", q.PanelTitle, r.Series)
			}
		}

		// A few values, to show the data is the seeded data.
		checkValue(t, prom, `billing_usage_percentage{tenant_id="1",limit_type="messages"}`, 85)
		checkValue(t, prom, `billing_tenants_over_threshold{limit_type="messages",threshold="100"}`, 1)
		checkValue(t, prom, `sum(billing_tenant_using_defaults)`, 1)
		checkValue(t, prom, `sum(billing_tenants_per_plan)`, 4)
	})

	t.Run("redis down", func(t *testing.T) {
		redis.Stop()
		down := waitForAlert(t, prom, "BillingRedisDown")
		if len(down) != 1 {
			t.Fatalf("BillingRedisDown: want one alert, got %+v", down)
		}
		checkAlert(t, down[0], "pending", map[string]string{"alertname": "BillingRedisDown", "severity": "critical",
			"job": "billing_exporter", "instance": exp.addr})

		// The exporter drops every per-tenant series; Prometheus marks them
		// stale on the next scrape, so an instant query no longer sees them.
		perTenant := `{__name__=~"billing_usage|billing_usage_limit|billing_usage_percentage|billing_tenant_using_defaults|billing_tenant_plan_info"}`
		if !prom.WaitFor(t, func() bool { return prom.Query(t, perTenant).Empty() }, liveWait) {
			t.Errorf("per-tenant series still there %v after Redis stopped: %v", liveWait, prom.Query(t, perTenant).Series)
		}
		// With them the per-tenant alerts go (Alertmanager would have muted
		// them meanwhile; see the inhibition rules).
		if !prom.WaitFor(t, func() bool { return len(alertsNamed(prom.Alerts(t), "BillingUsageNearLimit")) == 0 }, liveWait) {
			t.Error("BillingUsageNearLimit still pending without usage series")
		}
		checkValue(t, prom, `billing_redis_up`, 0)

		// Back up (empty: the test Redis keeps no data): the alert resolves.
		redis.Start()
		if !prom.WaitFor(t, func() bool { return len(alertsNamed(prom.Alerts(t), "BillingRedisDown")) == 0 }, liveWait) {
			t.Error("BillingRedisDown still pending after Redis came back")
		}
		checkValue(t, prom, `billing_redis_up`, 1)
	})
}

// waitForAlert waits until Prometheus has at least one alert of that name
// (pending or firing) and returns them all.
func waitForAlert(t *testing.T, prom *testserver.Prometheus, name string) []testserver.Alert {
	t.Helper()
	var got []testserver.Alert
	if !prom.WaitFor(t, func() bool { got = alertsNamed(prom.Alerts(t), name); return len(got) > 0 }, liveWait) {
		t.Fatalf("%s not pending after %v; alerts: %+v\n%s", name, liveWait, prom.Alerts(t), liveDiagnosis(t, prom))
	}
	return got
}

// liveDiagnosis says what Prometheus has of the exporter's view, for
// failure messages: whether it reads its sources, and the tenants it sees.
func liveDiagnosis(t *testing.T, prom *testserver.Prometheus) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("what Prometheus has from the exporter:")
	for _, expr := range []string{
		`up`,
		`billing_redis_up`,
		`billing_redis_usage_keys`,
		`billing_postgres_up`,
		`billing_exporter_invalid_data_items > 0`,
		`billing_usage_percentage`,
	} {
		fmt.Fprintf(&b, "\n  %s: %v", expr, prom.Query(t, expr).Series)
	}
	return b.String()
}

func alertsNamed(alerts []testserver.Alert, name string) []testserver.Alert {
	var out []testserver.Alert
	for _, a := range alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// alertsByTenant keys alerts by "tenant_id/limit_type".
func alertsByTenant(alerts []testserver.Alert) map[string]testserver.Alert {
	out := map[string]testserver.Alert{}
	for _, a := range alerts {
		out[a.Labels["tenant_id"]+"/"+a.Labels["limit_type"]] = a
	}
	return out
}

// checkAlert checks an alert's state and that its labels are exactly want
// (the rule's labels and those of the series that fired it).
func checkAlert(t *testing.T, a testserver.Alert, state string, want map[string]string) {
	t.Helper()
	if a.State != state {
		t.Errorf("%s: state %q, want %q", a.Labels["alertname"], a.State, state)
	}
	if !maps.Equal(a.Labels, want) {
		t.Errorf("%s: labels\n%v\nwant\n%v", a.Labels["alertname"], a.Labels, want)
	}
	for _, k := range []string{"summary", "description", "runbook_url"} {
		if v := a.Annotations[k]; v == "" || strings.Contains(v, "<no value>") {
			t.Errorf("%s: annotation %s is %q", a.Labels["alertname"], k, v)
		}
	}
}

// checkValue checks that expr has one sample, of value want.
func checkValue(t *testing.T, prom *testserver.Prometheus, expr string, want float64) {
	t.Helper()
	r := prom.Query(t, expr)
	if len(r.Series) != 1 || r.Series[0].Value() != want {
		t.Errorf("%s = %v, want one sample of %v", expr, r.Series, want)
	}
}

func allNaN(r testserver.QueryResult) bool {
	for _, s := range r.Series {
		for _, p := range s.Points {
			if !math.IsNaN(p.V) {
				return false
			}
		}
	}
	return true
}

// buildExporterBinary builds billing_exporter from the repository root.
func buildExporterBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "billing_exporter")
	cmd := exec.Command("go", "build", "-o", bin, "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func writeLiveFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// liveExporter is a running billing_exporter process.
type liveExporter struct {
	addr   string // host:port
	mu     sync.Mutex
	output bytes.Buffer
}

func (e *liveExporter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.output.Write(p)
}

func (e *liveExporter) Output() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.output.String()
}

// startLiveExporter runs the binary on a free loopback port and waits until
// it serves; when another process took the port first, it tries another.
func startLiveExporter(t *testing.T, bin string, args ...string) *liveExporter {
	t.Helper()
	for attempt := 1; ; attempt++ {
		e := &liveExporter{addr: "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))}
		cmd := exec.Command(bin, append([]string{"--web.listen-address=" + e.addr}, args...)...)
		cmd.Stdout, cmd.Stderr = e, e
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get("http://" + e.addr + "/metrics")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Cleanup(func() {
						stop()
						if t.Failed() {
							t.Logf("exporter output:\n%s", e.Output())
						}
					})
					return e
				}
			}
			select {
			case err := <-exited:
				exited <- err
				if attempt < 3 && strings.Contains(e.Output(), "address already in use") {
					goto retry
				}
				t.Fatalf("exporter exited at start: %v\n%s", err, e.Output())
			default:
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("exporter not serving after 20s:\n%s", e.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	retry:
	}
}

// backendStandIn stands in for the SaaS backend's own /metrics: the
// prom-client counters the seed specification instruments the backend with
// (backend/src/config/prometheus.ts, UsageService, checkPlanLimits), which
// billing_exporter cannot see in Redis. The backend rules
// (alerts/backend.rules.yml) and the "(backend)" dashboard panels read them.
// Every scrape counts more traffic, as a busy backend would: tenant 1 is
// refused further WhatsApp sessions and tenant 4 further messages, and some
// usage increments fail on Redis timeouts.
type backendStandIn struct {
	addr string
}

func startBackendStandIn(t *testing.T) *backendStandIn {
	t.Helper()
	reg := prometheus.NewRegistry()
	increments := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_usage_increment_total",
		Help: "Usage increments recorded by the backend.",
	}, []string{"tenant_id", "metric_type"})
	incrementErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_usage_increment_errors_total",
		Help: "Usage increments the backend failed to record.",
	}, []string{"tenant_id", "metric_type", "error_type"})
	limitExceeded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_limit_exceeded_total",
		Help: "Requests the backend refused because a plan limit was reached.",
	}, []string{"tenant_id", "limit_type"})
	reg.MustRegister(increments, incrementErrors, limitExceeded)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Prometheus scrapes once a second, so these are also the rates
		// per second. They are well above the backend alerts' thresholds
		// (0.1/s and 0.01/s), because a fresh Prometheus has only seconds
		// of data and rate(...[5m]) divides by (nearly) the whole window.
		increments.WithLabelValues("1", "messages").Add(5)
		increments.WithLabelValues("3", "messages").Add(1)
		incrementErrors.WithLabelValues("1", "messages", "redis_timeout").Add(3)
		limitExceeded.WithLabelValues("1", "whatsappSessions").Add(10)
		limitExceeded.WithLabelValues("4", "messages").Add(20)
		metrics.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &backendStandIn{addr: strings.TrimPrefix(srv.URL, "http://")}
}
