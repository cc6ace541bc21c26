package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// receiverFor is the seed's escalation: the receiver each severity must reach.
var receiverFor = map[string]string{
	"critical": "critical-pagerduty-slack-incidents",
	"warning":  "warning-slack-monitoring",
	"info":     "info-email-customer-success",
}

type amRoute struct {
	Receiver       string    `yaml:"receiver"`
	GroupBy        []string  `yaml:"group_by"`
	GroupWait      string    `yaml:"group_wait"`
	GroupInterval  string    `yaml:"group_interval"`
	RepeatInterval string    `yaml:"repeat_interval"`
	Matchers       []string  `yaml:"matchers"`
	Continue       bool      `yaml:"continue"`
	Routes         []amRoute `yaml:"routes"`
}

type amConfig struct {
	Route        amRoute `yaml:"route"`
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
	Receivers []map[string]any `yaml:"receivers"`
}

func loadAlertmanagerConfig(t testing.TB) (amConfig, map[string]any) {
	t.Helper()
	var c amConfig
	readYAML(t, repoPath(t, alertmanagerFile), &c)
	var raw map[string]any
	readYAML(t, repoPath(t, alertmanagerFile), &raw)
	return c, raw
}

func TestAlertmanagerConfigValid(t *testing.T) {
	out, err := runTool(t, "amtool", "check-config", alertmanagerFile)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config %s: %v\n%s", alertmanagerFile, err, out)
	}
}

// TestAlertmanagerRoutes runs `amtool config routes test --verify.receivers`
// for every shipped alert, with the labels its promtool test fires it with,
// and for a few hand-made label sets.
func TestAlertmanagerRoutes(t *testing.T) {
	type routeCase struct {
		name     string
		labels   map[string]string
		receiver string
	}
	cases := []routeCase{
		{"critical", map[string]string{"alertname": "BillingRedisDown", "severity": "critical"}, receiverFor["critical"]},
		{"warning", map[string]string{"alertname": "BillingRedisHighLatency", "severity": "warning", "operation": "scan"}, receiverFor["warning"]},
		{"info", map[string]string{"alertname": "BillingTenantWithoutPlan", "severity": "info", "tenant_id": "7"}, receiverFor["info"]},
		{"critical tenant alert", map[string]string{"alertname": "BillingLimitExceededFrequent", "severity": "critical", "tenant_id": "42", "limit_type": "messages"}, receiverFor["critical"]},
		{"warning tenant alert", map[string]string{"alertname": "BillingUsageNearLimit", "severity": "warning", "tenant_id": "1", "limit_type": "messages"}, receiverFor["warning"]},
		{"no severity falls back to Slack #monitoring", map[string]string{"alertname": "SomethingElse"}, receiverFor["warning"]},
		{"unknown severity falls back to Slack #monitoring", map[string]string{"alertname": "SomethingElse", "severity": "page"}, receiverFor["warning"]},
	}
	for _, a := range loadAlerts(t) {
		for i, f := range a.Fires {
			cases = append(cases, routeCase{fmt.Sprintf("%s/%d", a.Name(), i), f.Labels, receiverFor[a.Rule.Labels["severity"]]})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"config", "routes", "test", "--config.file=" + alertmanagerFile, "--verify.receivers=" + c.receiver}
			for _, k := range slices.Sorted(maps.Keys(c.labels)) {
				args = append(args, k+"="+c.labels[k])
			}
			out, err := runTool(t, "amtool", args...)
			if err != nil {
				t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if got := lastLine(out); got != c.receiver {
				t.Errorf("labels %v route to %q, want %q", c.labels, got, c.receiver)
			}
		})
	}
}

// lastLine returns the last non-empty line that is not an amtool warning.
func lastLine(out string) string {
	last := ""
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Warning:") {
			last = l
		}
	}
	return last
}

// TestAlertmanagerReceivers checks that each receiver notifies where the
// seed says: PagerDuty and Slack #incidents, Slack #monitoring, e-mail.
func TestAlertmanagerReceivers(t *testing.T) {
	c, _ := loadAlertmanagerConfig(t)
	byName := map[string]map[string]any{}
	for _, r := range c.Receivers {
		byName[fmt.Sprint(r["name"])] = r
	}
	tests := []struct {
		receiver     string
		integrations []string
		channel      string // Slack channel, if any
	}{
		{receiverFor["critical"], []string{"pagerduty_configs", "slack_configs"}, "#incidents"},
		{receiverFor["warning"], []string{"slack_configs"}, "#monitoring"},
		{receiverFor["info"], []string{"email_configs"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.receiver, func(t *testing.T) {
			r := byName[tt.receiver]
			if r == nil {
				t.Fatalf("no receiver %q", tt.receiver)
			}
			var got []string
			for k := range r {
				if strings.HasSuffix(k, "_configs") {
					got = append(got, k)
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, tt.integrations) {
				t.Errorf("integrations %v, want %v", got, tt.integrations)
			}
			if tt.channel != "" {
				slack, _ := r["slack_configs"].([]any)
				for _, s := range slack {
					if ch := fmt.Sprint(s.(map[string]any)["channel"]); ch != tt.channel {
						t.Errorf("Slack channel %q, want %q", ch, tt.channel)
					}
				}
			}
		})
	}
}

// TestAlertmanagerInfoDigest checks that info alerts reach customer success
// as a digest: not one message per tenant, not more than about once a day.
func TestAlertmanagerInfoDigest(t *testing.T) {
	c, _ := loadAlertmanagerConfig(t)
	var info *amRoute
	for i, r := range c.Route.Routes {
		if slices.Contains(r.Matchers, `severity="info"`) {
			info = &c.Route.Routes[i]
		}
	}
	if info == nil {
		t.Fatal(`no route with matcher severity="info"`)
	}
	groupBy := info.GroupBy
	if groupBy == nil {
		groupBy = c.Route.GroupBy
	}
	if slices.Contains(groupBy, "tenant_id") || slices.Contains(groupBy, "...") {
		t.Errorf("info route groups by %v: a digest must not be split per tenant", groupBy)
	}
	for _, d := range []struct {
		name, value string
		min         time.Duration
	}{
		{"group_wait", info.GroupWait, time.Hour},
		{"group_interval", info.GroupInterval, time.Hour},
		{"repeat_interval", info.RepeatInterval, 24 * time.Hour},
	} {
		v, err := model.ParseDuration(d.value)
		if err != nil || time.Duration(v) < d.min {
			t.Errorf("info route %s is %q, want at least %v for a digest", d.name, d.value, d.min)
		}
	}
}

// secretKeys are Alertmanager settings that hold a secret inline; each has a
// *_file variant that must be used instead.
var secretKeys = []string{"api_url", "slack_api_url", "routing_key", "service_key", "auth_password",
	"smtp_auth_password", "auth_secret", "smtp_auth_secret", "password", "bearer_token", "credentials",
	"api_key", "opsgenie_api_key", "victorops_api_key", "wechat_api_secret", "token", "bot_token"}

func TestAlertmanagerSecretsFromFiles(t *testing.T) {
	_, raw := loadAlertmanagerConfig(t)
	found := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				found[k] = true
				if slices.Contains(secretKeys, k) && fmt.Sprint(x) != "" {
					t.Errorf("%s.%s holds a secret inline: use %s_file", path, k, k)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", raw)
	for _, k := range []string{"routing_key_file", "api_url_file", "smtp_auth_password_file"} {
		if !found[k] {
			t.Errorf("%s does not set %s: the PagerDuty key, Slack URLs and SMTP password must come from files", alertmanagerFile, k)
		}
	}
}

// amSecretsDir is where examples/alertmanager.yml reads its secrets from
// (docker-compose.yml mounts examples/secrets/ there). Alertmanager 0.25
// opens a relative *_file path from its working directory, not from the
// configuration's, so the paths are absolute.
const amSecretsDir = "/etc/alertmanager/secrets/"

// TestAlertmanagerSecretFiles checks that every file the example reads is
// in amSecretsDir and is one of the placeholders in examples/secrets/, and
// that each Slack channel has a
// webhook of its own: a Slack app's webhook ignores channel:.
func TestAlertmanagerSecretFiles(t *testing.T) {
	_, raw := loadAlertmanagerConfig(t)
	var files []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if strings.HasSuffix(k, "_file") {
					files = append(files, fmt.Sprint(x))
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw)
	if len(files) == 0 {
		t.Fatal("no *_file setting")
	}
	for _, f := range files {
		name, ok := strings.CutPrefix(f, amSecretsDir)
		if !ok || strings.Contains(name, "/") {
			t.Errorf("%s: %q is not a file of %s", alertmanagerFile, f, amSecretsDir)
			continue
		}
		if _, err := os.Stat(repoPath(t, "examples/secrets/"+name)); err != nil {
			t.Errorf("%s reads %s, which examples/secrets/ does not ship: %v", alertmanagerFile, f, err)
		}
	}
	c, _ := loadAlertmanagerConfig(t)
	webhooks := map[string]string{} // api_url_file -> channel
	for _, r := range c.Receivers {
		slack, _ := r["slack_configs"].([]any)
		for _, s := range slack {
			sc := s.(map[string]any)
			file, channel := fmt.Sprint(sc["api_url_file"]), fmt.Sprint(sc["channel"])
			if sc["api_url_file"] == nil {
				t.Errorf("receiver %v: a Slack config without its own api_url_file", r["name"])
				continue
			}
			if other, ok := webhooks[file]; ok && other != channel {
				t.Errorf("Slack channels %s and %s share the webhook %s", other, channel, file)
			}
			webhooks[file] = channel
		}
	}
}

// TestAlertmanagerInhibition starts the real Alertmanager with the example
// configuration, sends it alerts with the labels the promtool tests fire
// them with, and asks it which are inhibited: BillingRedisDown and
// BillingExporterDown must mute the per-tenant alerts they make false, and
// nothing else.
func TestAlertmanagerInhibition(t *testing.T) {
	alerts := loadAlerts(t)
	labelsOf := func(name string) map[string]string {
		a := alertByName(alerts, name)
		if a == nil || len(a.Fires) == 0 {
			t.Fatalf("alert %s has no firing promtool test to take its labels from", name)
		}
		return a.Fires[0].Labels
	}
	// The per-tenant alerts built on the exporter's usage series.
	var tenantAlerts []string
	for _, a := range alerts {
		if a.File != backendRules && a.IsTenantAlert() {
			tenantAlerts = append(tenantAlerts, a.Name())
		}
	}
	if len(tenantAlerts) == 0 {
		t.Fatal("no per-tenant exporter alert found")
	}
	exporterDown := alertByName(alerts, "BillingExporterDown")
	if exporterDown == nil || len(exporterDown.Fires) < 2 {
		t.Fatal("BillingExporterDown needs promtool cases firing both with an instance and from absent()")
	}
	otherRedisDown := maps.Clone(labelsOf("BillingRedisDown"))
	otherRedisDown["instance"] = "other-exporter:9866"

	// The alerts sent with each source. The two source alerts are left out:
	// each would inhibit the others itself.
	targets := []string{"BillingUsageNearLimit", "BillingLimitReached", "BillingUsagePredictedToExceed", "BillingTenantWithoutPlan",
		"BillingRedisHighLatency", "BillingRedisReplicaLinkDown", "BillingRedisMirrorDiverged", "BillingPostgresDown",
		"BillingPlansStale", "BillingExporterConfigReloadFailed", "BillingRedisTrackingUnavailable",
		"BillingLimitExceededFrequent", "BillingUsageIncrementErrors"}
	// Redis down hides the replica's link state, not the mirror's last
	// self-check, the tracking state nor the reload's result; the exporter
	// down hides all.
	sourceMutes := append(slices.Clone(tenantAlerts), "BillingRedisHighLatency", "BillingRedisReplicaLinkDown")
	exporterMutes := append(slices.Clone(sourceMutes), "BillingPostgresDown", "BillingPlansStale", "BillingRedisDown",
		"BillingRedisMirrorDiverged", "BillingRedisTrackingUnavailable", "BillingExporterConfigReloadFailed")
	scenarios := []struct {
		name      string
		source    map[string]string
		targets   []string
		inhibited []string // the targets that must be muted; the rest must not be
	}{
		{"BillingRedisDown", labelsOf("BillingRedisDown"), targets, sourceMutes},
		{"BillingExporterDown with instance", exporterDown.Fires[0].Labels, targets, exporterMutes},
		{"BillingExporterDown from absent", exporterDown.Fires[1].Labels, targets, exporterMutes},
		{"BillingExporterDown mutes BillingRedisDown", exporterDown.Fires[0].Labels, []string{"BillingRedisDown"}, exporterMutes},
		{"BillingRedisDown of another exporter", otherRedisDown, targets, []string{"BillingRedisHighLatency"}},
		{"no source", nil, targets, nil},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			am := startAlertmanager(t)
			var send []map[string]string
			if sc.source != nil {
				send = append(send, sc.source)
			}
			for _, name := range sc.targets {
				send = append(send, labelsOf(name))
			}
			am.post(t, send)
			// The inhibitor learns of the source asynchronously: wait until
			// every alert that must be muted is (or a deadline passes), then
			// the state is settled and the others must not be.
			var status map[string]bool
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				status = am.inhibition(t)
				settled := true
				for _, labels := range send {
					if slices.Contains(sc.inhibited, labels["alertname"]) && !status[labelsKey(labels)] {
						settled = false
					}
				}
				if settled || time.Now().After(deadline) {
					break
				}
			}
			for _, labels := range send {
				if sc.source != nil && labelsKey(labels) == labelsKey(sc.source) {
					continue
				}
				name := labels["alertname"]
				got, ok := status[labelsKey(labels)]
				if !ok {
					t.Errorf("Alertmanager does not list %s %v", name, labels)
					continue
				}
				if want := slices.Contains(sc.inhibited, name); got != want {
					t.Errorf("%s %v: inhibited = %v, want %v", name, labels, got, want)
				}
			}
		})
	}
}

type alertmanager struct {
	url  string // base URL, route prefix included
	addr string // host:port
}

var amCounter atomic.Int64

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startAlertmanager runs the Alertmanager binary (Debian's
// prometheus-alertmanager, or alertmanager) on a free loopback port with the
// example configuration, clustering off.
func startAlertmanager(t *testing.T) *alertmanager {
	t.Helper()
	return startAlertmanagerConfig(t, repoPath(t, alertmanagerFile))
}

// startAlertmanagerConfig is startAlertmanager with another configuration
// file. Alertmanager runs in a directory of its own, so that the *_file
// paths relative to the configuration's directory must resolve as such.
func startAlertmanagerConfig(t *testing.T, configPath string) *alertmanager {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Fatal("the Alertmanager binary (prometheus-alertmanager or alertmanager) is not installed: the monitoring tests need it. On Debian: apt-get install -y prometheus-alertmanager")
		}
	}
	for attempt := 0; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		// A route prefix of its own, so that a server that took the port
		// first (another test's) cannot pass for this one.
		base := fmt.Sprintf("http://%s/am-%d-%d", addr, os.Getpid(), amCounter.Add(1))
		var logs testserver.LogBuffer
		cmd := exec.Command(bin,
			"--config.file="+configPath,
			"--storage.path="+t.TempDir(),
			"--web.listen-address="+addr,
			"--web.external-url="+base,
			"--cluster.listen-address=",
			"--log.level=warn")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.Dir = t.TempDir()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				// Lost the port to another process: try another one.
				if attempt < 3 {
					goto retry
				}
				t.Fatalf("Alertmanager exited:\n%s", logs.String())
			default:
			}
			if resp, err := http.Get(base + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Cleanup(func() {
						stop()
						if t.Failed() {
							t.Logf("Alertmanager log:\n%s", logs.String())
						}
					})
					return &alertmanager{url: base, addr: addr}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		t.Fatalf("Alertmanager did not get ready on %s:\n%s", addr, logs.String())
	retry:
	}
}

func (am *alertmanager) post(t *testing.T, alerts []map[string]string) {
	t.Helper()
	type postable struct {
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
	}
	now := time.Now()
	var body []postable
	for _, l := range alerts {
		body = append(body, postable{Labels: l, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)})
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
}

// inhibition returns, for every alert Alertmanager holds (keyed by
// labelsKey), whether it is inhibited.
func (am *alertmanager) inhibition(t *testing.T) map[string]bool {
	t.Helper()
	resp, err := http.Get(am.url + "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range got {
		out[labelsKey(a.Labels)] = len(a.Status.InhibitedBy) > 0
	}
	return out
}

func labelsKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		fmt.Fprintf(&b, "%s=%q,", k, l[k])
	}
	return b.String()
}

// TestAlertmanagerMessages sends the example configuration (with local
// sinks) a group of 15 firing and 3 resolved tenant alerts, with the rules'
// summaries, and a critical alert: the Slack message states the summary
// once, then lists only firing tenants, 10 of them, each by tenant_id, then
// "and 5 more" with the link to the full list; PagerDuty gets the severity.
func TestAlertmanagerMessages(t *testing.T) {
	alerts := loadAlerts(t)
	summary := alertByName(alerts, "BillingUsageNearLimit").Rule.Annotations["summary"]
	hooks := startWebhookSink(t)
	smtp := startSMTPSink(t)
	am := startAlertmanagerConfig(t, deliveryConfig(t, hooks, smtp))
	now := time.Now()
	type postable struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	}
	listURL := "http://billing-exporter:9866/api/v1/tenants?limit_type=messages&min_percentage=80"
	var body []postable
	for i := 1; i <= 18; i++ {
		end := now.Add(time.Hour)
		if i > 15 {
			end = now.Add(-time.Second) // resolved
		}
		body = append(body, postable{
			Labels: map[string]string{"alertname": "BillingUsageNearLimit", "severity": "warning", "job": "billing_exporter",
				"instance": "billing-exporter:9866", "tenant_id": fmt.Sprintf("t%02d", i), "limit_type": "messages"},
			Annotations: map[string]string{
				"summary":       summary,
				"description":   fmt.Sprintf("Tenant t%02d has used 85.0%% of its message limit.", i),
				"runbook_url":   runbookBase + "#billingusagenearlimit",
				"dashboard_url": grafanaBase + "/d/billing-tenant/billing-per-tenant?var-tenant_id=" + fmt.Sprintf("t%02d", i),
				"tenants_url":   listURL,
				"tenant_url":    fmt.Sprintf("http://billing-exporter:9866/tenants/t%02d", i),
			},
			StartsAt: now.Add(-time.Minute), EndsAt: end,
		})
	}
	// An info digest: one tenant alert with the tenant's page, one whose
	// rule gives none.
	withoutPlan := alertByName(alerts, "BillingTenantWithoutPlan").Rule.Annotations["summary"]
	for _, tenant := range []string{"acme/eu", "t99"} {
		a := postable{
			Labels: map[string]string{"alertname": "BillingTenantWithoutPlan", "severity": "info", "job": "billing_exporter",
				"instance": "billing-exporter:9866", "tenant_id": tenant},
			Annotations: map[string]string{
				"summary":     withoutPlan,
				"description": "Tenant " + tenant + " has had no active plan for 30m or more.",
				"runbook_url": runbookBase + "#billingtenantwithoutplan",
			},
			StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
		}
		if tenant == "acme/eu" {
			a.Annotations["tenant_url"] = "http://billing-exporter:9866/tenants/acme%2Feu"
		}
		body = append(body, a)
	}
	body = append(body, postable{
		Labels:      map[string]string{"alertname": "BillingRedisDown", "severity": "critical", "job": "billing_exporter", "instance": "other:9866"},
		Annotations: map[string]string{"summary": alertByName(alerts, "BillingRedisDown").Rule.Annotations["summary"], "runbook_url": runbookBase + "#billingredisdown"},
		StartsAt:    now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	})
	b, _ := json.Marshal(body)
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// Alertmanager may flush the group before it has taken in every alert
	// of the request (group_wait is 1 s): the next flush, a group interval
	// later, has them all.
	want := "[FIRING] BillingUsageNearLimit (15 firing)"
	var title, text string
	for deadline := time.Now().Add(liveWait); ; time.Sleep(200 * time.Millisecond) {
		for _, n := range hooks.posts("/slack/monitoring") {
			if tt, tx := slackTitleText(n); tt == want {
				title, text = tt, tx
			}
		}
		if title != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Slack post titled %q after %v; got %+v", want, liveWait, hooks.posts("/slack/monitoring"))
		}
	}
	listed := 0
	for i := 1; i <= 18; i++ {
		if strings.Contains(text, fmt.Sprintf("• tenant_id=t%02d <http://billing-exporter:9866/tenants/t%02d|Tenant page> <", i, i)) {
			listed++
			if i > 15 {
				t.Errorf("the Slack message lists resolved tenant t%02d:\n%s", i, text)
			}
		}
	}
	if listed != 10 {
		t.Errorf("the Slack message lists %d tenants with a link to their page, want 10:\n%s", listed, text)
	}
	if !strings.HasPrefix(text, "*"+summary+"*\n") || strings.Count(text, summary) != 1 {
		t.Errorf("the Slack message does not state the summary %q once, first:\n%s", summary, text)
	}
	for _, want := range []string{"and 5 more: <" + listURL + "|full list>", "Runbook: " + runbookBase + "#billingusagenearlimit"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Slack message lacks %q:\n%s", want, text)
		}
	}
	if len(text) > 3000 {
		t.Errorf("the Slack message is %d characters long, want at most 3000:\n%s", len(text), text)
	}

	// The digest links the page of the tenant whose alert has one, and
	// only that one.
	var digest email
	for deadline := time.Now().Add(liveWait); ; time.Sleep(200 * time.Millisecond) {
		if mails := smtp.emails(); len(mails) > 0 {
			digest = mails[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no info digest e-mail after %v", liveWait)
		}
	}
	for _, want := range []string{
		`Tenant acme/eu has had no active plan for 30m or more. <a href="http://billing-exporter:9866/tenants/acme%2Feu">Tenant page</a></li>`,
		"Tenant t99 has had no active plan for 30m or more.</li>",
		"- Tenant acme/eu has had no active plan for 30m or more.\n  Tenant page: http://billing-exporter:9866/tenants/acme%2Feu\n",
		"- Tenant t99 has had no active plan for 30m or more.\n",
		"<p><b>" + withoutPlan + "</b></p>",
		"Runbook: " + runbookBase + "#billingtenantwithoutplan",
	} {
		if !strings.Contains(digest.Body, want) {
			t.Errorf("the digest e-mail lacks %q:\n%s", want, digest.Body)
		}
	}
	if n := strings.Count(digest.Body, "Tenant page"); n != 2 {
		t.Errorf("the digest e-mail has %d tenant page links, want 2 (HTML and text, one tenant):\n%s", n, digest.Body)
	}

	page := waitForPost(t, hooks, "/pagerduty", "BillingRedisDown")
	payload, _ := page.Body["payload"].(map[string]any)
	if got := payload["severity"]; got != "critical" {
		t.Errorf("PagerDuty event severity %v, want critical", got)
	}
}
