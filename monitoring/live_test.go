package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// The live test's data. Plan 1 ("starter") allows 5000 messages, 5 users
// and one WhatsApp session. Tenant 1 uses its one session (normal use, no
// alert) and gets the seed's Test 3 (4250 messages, 85 %) during the test;
// tenant 2 has 6 users of 5 (a seat limit passed); tenant 4 is over its
// message limit; tenants 3 and 5 have no plan (the default limits apply).
const (
	livePlansSQL = `
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions)
VALUES (1, 'starter', 5000, 1073741824, 5, 1);
INSERT INTO tenants (id, name, plan_id) VALUES (1, 'one', 1), (2, 'two', 1), (3, 'three', NULL), (4, 'four', 1), (5, 'five', NULL);`
	liveConfigYAML = `
defaults:
  limits: {messages: 1000, storage: 104857600, users: 2, whatsappSessions: 1}
`
	// liveWait bounds every wait for something Prometheus or a receiver
	// must see; the scrape and evaluation intervals are 1 s.
	liveWait = 60 * time.Second

	// liveJob is the exporter's scrape job: not the mixin's default, so
	// that a rule or dashboard query that ignores the job selector fails.
	liveJob = "billing-custom"
)

// liveMixinConfig renders the mixin for the live test: its own job name and
// `for` durations of seconds. BillingLimitReached keeps a long one, so that
// it is pending throughout (its activeAt is watched through the blips and
// the outage), as does BillingRedisDown next to the blips' 2.5 s Redis
// pause. The windows are the defaults scaled down ten times: 5m to 30s,
// 1h to 6m.
var liveMixinConfig = map[string]any{
	"exporterSelector": `job="` + liveJob + `"`,
	"backendSelector":  `job="backend"`,
	"continuityWindow": "30s",
	"outageWindow":     "6m",
	"for": map[string]any{
		"BillingUsageNearLimit":             "3s",
		"BillingLimitReached":               "10m",
		"BillingUsagePredictedToExceed":     "1h",
		"BillingTenantWithoutPlan":          "3s",
		"BillingRedisDown":                  "15s",
		"BillingRedisHighLatency":           "10m",
		"BillingPostgresDown":               "10s",
		"BillingPlansStale":                 "1m",
		"BillingExporterDown":               "15s",
		"BillingExporterConfigReloadFailed": "3s",
		"BillingRedisReplicaLinkDown":       "3s",
		"BillingRedisMirrorDiverged":        "0s",
		"BillingLimitExceededFrequent":      "3s",
		"BillingUsageIncrementErrors":       "3s",
	},
}

// liveVars are the values the Grafana variables of the dashboards get.
var liveVars = map[string]string{
	"tenant_id":       "1",
	"job":             liveJob,
	"instance":        ".+",
	"backend_job":     ".+",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__interval_ms":   "15000",
	"datasource":      "prometheus",
}

// pagerDutyKey is what the test puts in secrets/pagerduty_routing_key.
const pagerDutyKey = "live-test-routing-key"

// TestLiveMonitoring runs the rules and dashboards rendered from the mixin
// (with a non-default job) on a real Prometheus that scrapes the real
// exporter (over real Redis and PostgreSQL) and a stand-in for the SaaS
// backend's instrumentation, and sends its alerts to a real Alertmanager
// with examples/alertmanager.yml, whose receivers are local sinks.
func TestLiveMonitoring(t *testing.T) {
	bin := buildExporterBinary(t)

	redis := testserver.StartRedis(t)
	periodID := time.Now().UTC().Format("200601") // the exporter's default billing time zone is UTC
	redis.HSet("usage:1:"+periodID, "messages", 100, "storage", 104857600, "users", 3, "whatsappSessions", 1)
	redis.HSet("usage:2:"+periodID, "messages", 10, "users", 6)
	redis.HSet("usage:3:"+periodID, "messages", 10)
	redis.HSet("usage:4:"+periodID, "messages", 6000)
	redis.HSet("usage:5:"+periodID, "messages", 20)

	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, repoPath(t, "examples/schema.sql"))
	pg.Exec(livePlansSQL)

	configFile := writeLiveFile(t, "config.yml", liveConfigYAML)
	exp := startLiveExporter(t, bin,
		"--redis.addr="+redis.Addr(),
		"--redis.dial-timeout=500ms",
		"--postgres.dsn-file="+writeLiveFile(t, "dsn", pg.DSN()+"\n"),
		"--config.file="+configFile)
	// Prometheus scrapes through a proxy, which can make a scrape outlast
	// its timeout (a scrape cut by its deadline).
	scrapeProxy := testserver.StartFaultProxy(t, exp.addr)
	instance := scrapeProxy.Addr()
	backend := startBackendStandIn(t)

	hooks := startWebhookSink(t)
	smtp := startSMTPSink(t)
	am := startAlertmanagerConfig(t, deliveryConfig(t, hooks, smtp))

	rules, dashboards := renderLive(t)
	amURL, err := url.Parse(am.url)
	if err != nil {
		t.Fatal(err)
	}
	prom := testserver.StartPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
alerting:
  alertmanagers:
    - path_prefix: %q
      static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
  - job_name: backend
    static_configs:
      - targets: [%q]
`, amURL.Path, am.addr, liveJob, instance, backend.addr), rules...)

	for _, job := range []string{liveJob, "backend"} {
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

	// The seed's observability Test 3: HSET usage:1:<period> messages 4250
	// with a 5000 limit is 85 %, and BillingUsageNearLimit reaches Slack
	// #monitoring.
	t.Run("seed test 3: 85 percent reaches Slack monitoring", func(t *testing.T) {
		redis.HSet("usage:1:"+periodID, "messages", 4250)
		near := waitForAlert(t, prom, "BillingUsageNearLimit")
		if len(near) != 1 {
			t.Fatalf("BillingUsageNearLimit: want one alert (tenant 1), got %d: %+v", len(near), near)
		}
		a := near[0]
		checkAlert(t, a, a.State, map[string]string{"alertname": "BillingUsageNearLimit", "severity": "warning",
			"limit_type": "messages", "tenant_id": "1", "job": liveJob, "instance": instance})
		if v, err := strconv.ParseFloat(a.Value, 64); err != nil || v != 85 {
			t.Errorf("BillingUsageNearLimit value %q, want 85", a.Value)
		}
		post := waitForPost(t, hooks, "/slack/monitoring", "BillingUsageNearLimit")
		checkSlackPost(t, post, "#monitoring", "[FIRING] BillingUsageNearLimit", "Tenant 1 has used 85.0%", runbookBase+"#billingusagenearlimit")
		if u := a.Annotations["dashboard_url"]; !strings.Contains(u, "var-job="+liveJob) || !strings.Contains(u, "var-tenant_id=1") {
			t.Errorf("dashboard_url %q does not select job %s and tenant 1", u, liveJob)
		}
	})

	t.Run("limit semantics: seats over the limit, consumption at it", func(t *testing.T) {
		// Tenant 4 is over its messages, tenant 2 over its users; tenant 1
		// at its one WhatsApp session is normal use.
		var reached map[string]testserver.Alert
		prom.WaitFor(t, func() bool {
			reached = alertsByTenant(alertsNamed(prom.Alerts(t), "BillingLimitReached"))
			return len(reached) >= 2
		}, liveWait)
		if len(reached) != 2 {
			t.Errorf("BillingLimitReached: want tenant 4 (messages) and 2 (users), got %v", reached)
		}
		for key, tenant := range map[string]string{"4/messages": "4", "2/users": "2"} {
			a, ok := reached[key]
			if !ok {
				t.Errorf("BillingLimitReached not pending for %s: %v", key, reached)
				continue
			}
			checkAlert(t, a, "pending", map[string]string{"alertname": "BillingLimitReached", "severity": "warning",
				"limit_type": a.Labels["limit_type"], "tenant_id": tenant, "job": liveJob, "instance": instance})
		}
		checkValue(t, prom, `billing_usage_percentage{tenant_id="1",limit_type="whatsappSessions"}`, 100)
	})

	t.Run("critical reaches PagerDuty and Slack incidents", func(t *testing.T) {
		var frequent map[string]testserver.Alert
		prom.WaitFor(t, func() bool {
			frequent = alertsByTenant(alertsNamed(prom.Alerts(t), "BillingLimitExceededFrequent"))
			return len(frequent) >= 2
		}, liveWait)
		if _, ok := frequent["4/messages"]; !ok || len(frequent) != 2 {
			t.Errorf("BillingLimitExceededFrequent: want tenant 1 (whatsappSessions) and 4 (messages), got %v", frequent)
		}
		page := waitForPost(t, hooks, "/pagerduty", "BillingLimitExceededFrequent")
		checkPage(t, page, "trigger", runbookBase+"#billinglimitexceededfrequent")
		post := waitForPost(t, hooks, "/slack/incidents", "BillingLimitExceededFrequent")
		checkSlackPost(t, post, "#incidents", "[FIRING] BillingLimitExceededFrequent", "is being blocked frequently", runbookBase+"#billinglimitexceededfrequent")
		// The backend's increment errors are a warning.
		post = waitForPost(t, hooks, "/slack/monitoring", "BillingUsageIncrementErrors")
		checkSlackPost(t, post, "#monitoring", "[FIRING] BillingUsageIncrementErrors", "redis_timeout", runbookBase+"#billingusageincrementerrors")
	})

	t.Run("info arrives as one e-mail digest", func(t *testing.T) {
		var digests []email
		deadline := time.Now().Add(liveWait)
		for time.Now().Before(deadline) {
			if digests = smtp.emails(); len(digests) > 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(digests) != 1 {
			t.Fatalf("want one digest e-mail, got %d: %+v", len(digests), digests)
		}
		d := digests[0]
		if !slices.Equal(d.To, []string{"customer-success@example.com"}) {
			t.Errorf("digest sent to %v, want customer-success@example.com", d.To)
		}
		if want := "Billing digest: BillingTenantWithoutPlan (2 tenants)"; d.Subject != want {
			t.Errorf("digest subject %q, want %q", d.Subject, want)
		}
		for _, want := range []string{"Tenant 3 has had no active plan", "Tenant 5 has had no active plan", runbookBase + "#billingtenantwithoutplan"} {
			if !strings.Contains(d.Body, want) {
				t.Errorf("digest does not contain %q:\n%s", want, d.Body)
			}
		}
	})

	t.Run("blips resolve nothing and restart nothing", func(t *testing.T) {
		checkBlips(t, prom, redis, scrapeProxy, hooks, smtp)
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		vars := maps.Clone(liveVars)
		vars["job"], vars["instance"], vars["backend_job"] = liveJob, instance, "backend"
		queries, err := DashboardQueries(dashboards)
		if err != nil {
			t.Fatal(err)
		}
		exprs := make([]string, len(queries))
		for i, q := range queries {
			if exprs[i], err = q.Expand(vars); err != nil {
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
		}
		// The variables list what they should: the job of the mixin's
		// selector, its instance, every known tenant.
		rendered, _ := filepath.Glob(filepath.Join(dashboards, "*.json"))
		if len(rendered) == 0 {
			t.Fatal("the live render has no dashboard")
		}
		for _, f := range rendered {
			d, err := readDashboard(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				got := labelValues(t, prom, v.QueryString(), vars)
				want := map[string][]string{"job": {liveJob}, "instance": {instance}, "backend_job": {"backend"},
					"tenant_id": {"1", "2", "3", "4", "5"}}[v.Name]
				if !slices.Equal(got, want) {
					t.Errorf("dashboard %s variable %s lists %v, want %v", d.UID, v.Name, got, want)
				}
			}
		}

		// A few values, to show the data is the seeded data.
		checkValue(t, prom, `billing_usage_percentage{tenant_id="1",limit_type="messages"}`, 85)
		checkValue(t, prom, `billing_tenants_over_threshold{limit_type="messages",threshold="100"}`, 1)
		checkValue(t, prom, `sum(billing_tenant_using_defaults)`, 2)
		checkValue(t, prom, `sum(billing_tenants_per_plan)`, 5)
	})

	// An outage longer than the continuity window (30 s here, the default
	// 5m scaled down): the tenant alerts hold their last values, so none
	// goes away or restarts its `for`, and no RESOLVED of one reaches any
	// sink, during the outage or once Redis is back. BillingRedisDown pages,
	// and resolves.
	t.Run("redis down pages, and tenant alerts ride out the outage", func(t *testing.T) {
		tenantAlerts := []string{"BillingUsageNearLimit", "BillingLimitReached", "BillingTenantWithoutPlan"}
		for _, name := range tenantAlerts {
			if len(alertsNamed(prom.Alerts(t), name)) == 0 {
				t.Fatalf("%s is not active before the outage: nothing to watch", name)
			}
		}
		watch := watchAlerts(t, prom, func(a testserver.Alert) bool { return slices.Contains(tenantAlerts, a.Labels["alertname"]) })
		// Redis comes back with its data, as a restarted Redis with
		// persistence does.
		redis.Do("SAVE")
		redis.Stop()
		stopped := time.Now()
		// The exporter drops every per-tenant series; Prometheus marks them
		// stale on the next scrape, so an instant query no longer sees them.
		perTenant := `{__name__=~"billing_usage|billing_usage_limit|billing_usage_percentage|billing_tenant_using_defaults|billing_tenant_plan_info"}`
		if !prom.WaitFor(t, func() bool { return prom.Query(t, perTenant).Empty() }, liveWait) {
			t.Errorf("per-tenant series still there %v after Redis stopped: %v", liveWait, prom.Query(t, perTenant).Series)
		}
		checkValue(t, prom, `billing_redis_up`, 0)
		page := waitForPost(t, hooks, "/pagerduty", "BillingRedisDown")
		checkPage(t, page, "trigger", runbookBase+"#billingredisdown")
		if got := page.Body["payload"].(map[string]any)["severity"]; got != "critical" {
			t.Errorf("PagerDuty event severity %v, want critical", got)
		}
		// Down for 50 s: well past the 30 s continuity window.
		time.Sleep(time.Until(stopped.Add(50 * time.Second)))
		redis.Start()
		if !prom.WaitFor(t, func() bool { return !prom.Query(t, `billing_redis_up == 1`).Empty() }, liveWait) {
			t.Fatal("the exporter does not read Redis again after it came back")
		}
		if !prom.WaitFor(t, func() bool { return len(alertsNamed(prom.Alerts(t), "BillingRedisDown")) == 0 }, liveWait) {
			t.Error("BillingRedisDown still there after Redis came back")
		}
		// Time for a false resolution to be evaluated and notified (group
		// interval 2 s), once BillingRedisDown no longer mutes it.
		time.Sleep(6 * time.Second)
		for _, change := range watch() {
			t.Error("during the outage: " + change)
		}
		for _, n := range hooks.all() {
			title, _ := slackTitleText(n)
			var about []string
			for _, name := range tenantAlerts {
				if b, _ := json.Marshal(n.Body); strings.Contains(string(b), name) {
					about = append(about, name)
				}
			}
			if len(about) > 0 && (strings.Contains(title, "RESOLVED") || n.Body["event_action"] == "resolve") {
				t.Errorf("a RESOLVED of %v was sent on %s: %v", about, n.Path, n.Body)
			}
		}
	})

	// Last: its RESOLVED would be one more post on Slack #monitoring, which
	// "redis down pages" requires to hold none.
	t.Run("a refused reload reaches Slack monitoring, a good one resolves it", func(t *testing.T) {
		reload := func(want int) {
			t.Helper()
			resp, err := http.Post("http://"+exp.addr+"/-/reload", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("POST /-/reload: %s %s, want %d", resp.Status, body, want)
			}
		}
		if err := os.WriteFile(configFile, []byte("defaults: [\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		reload(http.StatusInternalServerError)
		failed := waitForAlert(t, prom, "BillingExporterConfigReloadFailed")
		checkAlert(t, failed[0], failed[0].State, map[string]string{"alertname": "BillingExporterConfigReloadFailed",
			"severity": "warning", "job": liveJob, "instance": instance})
		post := waitForPost(t, hooks, "/slack/monitoring", "BillingExporterConfigReloadFailed")
		// "loaded ...": the annotation's query found the time of the
		// configuration in force.
		checkSlackPost(t, post, "#monitoring", "[FIRING] BillingExporterConfigReloadFailed",
			"kept the previous configuration, loaded ", runbookBase+"#billingexporterconfigreloadfailed")

		if err := os.WriteFile(configFile, []byte(liveConfigYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		reload(http.StatusOK)
		if !prom.WaitFor(t, func() bool { return len(alertsNamed(prom.Alerts(t), "BillingExporterConfigReloadFailed")) == 0 }, liveWait) {
			t.Error("BillingExporterConfigReloadFailed still there after a successful reload")
		}
	})
}

// renderLive renders the mixin with liveMixinConfig and writes its rule
// files and dashboards to a temporary directory.
func renderLive(t *testing.T) (rules []string, dashboards string) {
	t.Helper()
	files, err := RenderMixin(repoRoot(t), liveMixinConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dashboards = filepath.Join(dir, "dashboards")
	if err := os.Mkdir(dashboards, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		var path string
		switch {
		case strings.HasPrefix(name, "alerts/"):
			path = filepath.Join(dir, filepath.Base(name))
			rules = append(rules, path)
		case strings.HasPrefix(name, "dashboards/"):
			path = filepath.Join(dashboards, filepath.Base(name))
		default:
			continue
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(rules)
	return rules, dashboards
}

// deliveryConfig copies examples/alertmanager.yml into a directory of its
// own with the files it reads (amSecretsDir, moved into that directory)
// pointed at the sinks. In the configuration itself only the global
// block's endpoints change (the SMTP
// relay, without TLS, and the PagerDuty URL, which Alertmanager 0.25 cannot
// read from a file) and the grouping times shrink to seconds: a route that
// waits an hour (the digest) waits 3 s, one that waits less waits 1 s,
// group intervals of an hour or more become 1 h, shorter ones 2 s, and
// repeat intervals 1 h, so that a test of minutes sees each notification
// once and any RESOLVED at once.
func deliveryConfig(t *testing.T, hooks *webhookSink, smtp *smtpSink) string {
	t.Helper()
	dir := t.TempDir()
	secrets := map[string]string{
		"slack_incidents_webhook_url":  hooks.url + "/slack/incidents",
		"slack_monitoring_webhook_url": hooks.url + "/slack/monitoring",
		"pagerduty_routing_key":        pagerDutyKey,
		"smtp_password":                "live-test-smtp-password",
	}
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range secrets {
		if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The secret files: the example's paths, moved under dir.
	b, err := os.ReadFile(repoPath(t, alertmanagerFile))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(amSecretsDir), []byte(filepath.Join(dir, "secrets")+"/"))
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	global := cfg["global"].(map[string]any)
	global["smtp_smarthost"] = smtp.addr
	global["smtp_require_tls"] = false
	global["pagerduty_url"] = hooks.url + "/pagerduty"
	var shrink func(route map[string]any)
	shrink = func(route map[string]any) {
		if v, ok := route["group_wait"]; ok {
			route["group_wait"] = "1s"
			if d, err := model.ParseDuration(fmt.Sprint(v)); err == nil && time.Duration(d) >= time.Hour {
				route["group_wait"] = "3s"
			}
		}
		if v, ok := route["group_interval"]; ok {
			route["group_interval"] = "2s"
			if d, err := model.ParseDuration(fmt.Sprint(v)); err == nil && time.Duration(d) >= time.Hour {
				route["group_interval"] = "1h"
			}
		}
		if _, ok := route["repeat_interval"]; ok {
			route["repeat_interval"] = "1h"
		}
		routes, _ := route["routes"].([]any)
		for _, r := range routes {
			shrink(r.(map[string]any))
		}
	}
	shrink(cfg["route"].(map[string]any))
	if b, err = yaml.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitForPost waits for a notification on path that names alertname.
func waitForPost(t *testing.T, hooks *webhookSink, path, alertname string) notification {
	t.Helper()
	deadline := time.Now().Add(liveWait)
	for {
		for _, n := range hooks.posts(path) {
			if b, _ := json.Marshal(n.Body); strings.Contains(string(b), alertname) {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification about %s on %s after %v; got %+v", alertname, path, liveWait, hooks.all())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func checkSlackPost(t *testing.T, n notification, channel, titlePrefix, textPart, runbook string) {
	t.Helper()
	if got := n.Body["channel"]; got != channel {
		t.Errorf("Slack post on %s: channel %v, want %s", n.Path, got, channel)
	}
	title, text := slackTitleText(n)
	if !strings.HasPrefix(title, titlePrefix) {
		t.Errorf("Slack post on %s: title %q, want it to start with %q", n.Path, title, titlePrefix)
	}
	if !strings.Contains(text, textPart) || !strings.Contains(text, "Runbook: "+runbook) {
		t.Errorf("Slack post on %s: text %q lacks %q or the runbook link %s", n.Path, text, textPart, runbook)
	}
}

func checkPage(t *testing.T, n notification, action, runbook string) {
	t.Helper()
	if got := n.Body["routing_key"]; got != pagerDutyKey {
		t.Errorf("PagerDuty event: routing_key %v, want the one in secrets/pagerduty_routing_key", got)
	}
	if got := n.Body["event_action"]; got != action {
		t.Errorf("PagerDuty event: event_action %v, want %s", got, action)
	}
	links, _ := n.Body["links"].([]any)
	found := false
	for _, l := range links {
		if m, _ := l.(map[string]any); m["href"] == runbook {
			found = true
		}
	}
	if !found {
		t.Errorf("PagerDuty event: links %v lack the runbook %s", links, runbook)
	}
}

// labelValues evaluates a dashboard variable's label_values(selector,
// label) query with the given variables, as Grafana would.
func labelValues(t *testing.T, prom *testserver.Prometheus, query string, vars map[string]string) []string {
	t.Helper()
	m := regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`).FindStringSubmatch(strings.TrimSpace(query))
	if m == nil {
		t.Fatalf("variable query %q is not label_values(<selector>, <label>)", query)
	}
	sel, err := Query{Expr: m[1]}.Expand(vars)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range prom.Query(t, sel).Series {
		out = append(out, s.Metric[m[2]])
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// checkBlips makes Redis fail for two scrapes (paused past the scrape's
// deadline, so the exporter's own scrapes are cut too) and Prometheus cut a
// scrape (the proxy delays the answer past scrape_timeout), while watching
// Prometheus' alerts: none that was pending or firing before may go away
// or change its activeAt, and no receiver may get a RESOLVED.
func checkBlips(t *testing.T, prom *testserver.Prometheus, redis *testserver.Redis, proxy *testserver.FaultProxy, hooks *webhookSink, smtp *smtpSink) {
	for _, name := range []string{"BillingUsageNearLimit", "BillingLimitReached", "BillingTenantWithoutPlan", "BillingLimitExceededFrequent"} {
		if len(alertsNamed(prom.Alerts(t), name)) == 0 {
			t.Fatalf("%s is not active before the blips: nothing to watch", name)
		}
	}
	sentBefore := len(hooks.all()) + len(smtp.emails())

	watch := watchAlerts(t, prom, func(testserver.Alert) bool { return true })

	// Redis paused for 2.5 s: two or three scrapes (1 s apart, 0.75 s
	// deadline) find it unresponsive, well under BillingRedisDown's `for`.
	redis.Do("CLIENT", "PAUSE", "2500", "ALL")
	time.Sleep(4 * time.Second)
	if !prom.WaitFor(t, func() bool { return !prom.Query(t, `min_over_time(billing_redis_up[20s]) == 0`).Empty() }, 5*time.Second) {
		t.Error("the exporter never reported Redis down during the pause: the blip did not happen")
	}
	// A scrape cut by Prometheus' deadline: the answer is held past the
	// 1 s scrape_timeout, so up is 0 and every series is marked stale.
	proxy.SetLatency(1500 * time.Millisecond)
	if !prom.WaitFor(t, func() bool { return !prom.Query(t, `min_over_time(up{job="`+liveJob+`"}[10s]) == 0`).Empty() }, 10*time.Second) {
		t.Error("no scrape was cut by Prometheus' deadline while the proxy held the answers")
	}
	proxy.SetLatency(0)
	if !prom.WaitFor(t, func() bool { return !prom.Query(t, `up{job="`+liveJob+`"} == 1`).Empty() }, liveWait) {
		t.Fatal("the exporter's target did not come back after the cut scrape")
	}
	// Time for a false resolution to be evaluated and notified (group
	// interval 2 s).
	time.Sleep(5 * time.Second)
	for _, change := range watch() {
		t.Error("during the blips: " + change)
	}
	for _, n := range hooks.all() {
		title, _ := slackTitleText(n)
		if strings.Contains(title, "RESOLVED") || n.Body["event_action"] == "resolve" {
			t.Errorf("a RESOLVED notification was sent on %s: %v", n.Path, n.Body)
		}
	}
	// The info digest is one e-mail: the blips did not start another.
	if n := len(smtp.emails()); n != 1 {
		t.Errorf("%d digest e-mails after the blips, want still 1", n)
	}
	t.Logf("notifications: %d before the blips, %d after", sentBefore, len(hooks.all())+len(smtp.emails()))
}

// watchAlerts watches, until the returned function is called, the alerts
// Prometheus has now (pending or firing) that keep says to watch: the
// function returns the first change seen of each, sorted (gone away, or
// activeAt changed: a `for` restarted).
func watchAlerts(t *testing.T, prom *testserver.Prometheus, keep func(testserver.Alert) bool) func() []string {
	before := map[string]testserver.Alert{}
	for _, a := range prom.Alerts(t) {
		if keep(a) {
			before[labelsKey(a.Labels)] = a
		}
	}
	var mu sync.Mutex
	changes := map[string]string{} // the first change seen, by alert
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			seen := map[string]testserver.Alert{}
			for _, a := range prom.Alerts(t) {
				seen[labelsKey(a.Labels)] = a
			}
			mu.Lock()
			for k, a := range before {
				if _, ok := changes[k]; ok {
					continue
				}
				switch now, ok := seen[k]; {
				case !ok:
					changes[k] = fmt.Sprintf("%s %v went away", a.Labels["alertname"], a.Labels)
				case !now.ActiveAt.Equal(a.ActiveAt):
					changes[k] = fmt.Sprintf("%s %v: activeAt %v -> %v", a.Labels["alertname"], a.Labels, a.ActiveAt, now.ActiveAt)
				}
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		close(stop)
		<-watched
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, k := range slices.Sorted(maps.Keys(changes)) {
			out = append(out, changes[k])
		}
		return out
	}
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
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = repoRoot(t) // the exporter's own module
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
	output testserver.LogBuffer
}

func (e *liveExporter) Write(p []byte) (int, error) {
	return e.output.Write(p)
}

func (e *liveExporter) Output() string {
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
