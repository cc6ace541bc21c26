package monitoring

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// knownMetrics are the metrics the shipped queries may use, with their own
// labels (job and instance come from the scrape): the exporter's contract
// (README, Metrics), the backend's prom-client counters, and up.
var knownMetrics = map[string][]string{
	"billing_usage":                                   {"tenant_id", "metric_type"},
	"billing_usage_limit":                             {"tenant_id", "limit_type"},
	"billing_usage_percentage":                        {"tenant_id", "limit_type"},
	"billing_tenant_using_defaults":                   {"tenant_id"},
	"billing_tenant_plan_info":                        {"tenant_id", "plan_id", "plan_name"},
	"billing_tenants_per_plan":                        {"plan_id", "plan_name"},
	"billing_tenants_over_threshold":                  {"limit_type", "threshold"},
	"billing_period_start_timestamp_seconds":          {},
	"billing_period_end_timestamp_seconds":            {},
	"billing_redis_up":                                {},
	"billing_postgres_up":                             {},
	"billing_plans_age_seconds":                       {},
	"billing_redis_memory_bytes":                      {},
	"billing_redis_connections_active":                {},
	"billing_redis_usage_keys":                        {},
	"billing_redis_info_up":                           {},
	"billing_redis_master_link_up":                    {},
	"billing_redis_mirror_divergent_keys":             {},
	"billing_redis_tracking_unavailable":              {},
	"billing_redis_operation_duration_seconds_bucket": {"operation", "le"},
	"billing_redis_operation_duration_seconds_sum":    {"operation"},
	"billing_redis_operation_duration_seconds_count":  {"operation"},
	"billing_exporter_scrape_duration_seconds":        {"source"},
	"billing_exporter_invalid_data_items":             {"source", "reason"},
	"billing_exporter_build_info":                     {"version", "revision", "branch", "goversion", "goos", "goarch", "tags"},
	"billing_exporter_config_last_reload_successful":  {},
	"billing_api_requests_total":                      {"endpoint", "status_code"},
	"billing_usage_increment_total":                   {"tenant_id", "metric_type"},
	"billing_usage_increment_errors_total":            {"tenant_id", "metric_type", "error_type"},
	"billing_limit_exceeded_total":                    {"tenant_id", "limit_type"},
	"up":                                              {},
}

var targetLabels = []string{"job", "instance"}

// knownLabelValues are the values a matcher may compare these labels with.
var knownLabelValues = map[string][]string{
	"metric_type": {"messages", "storage", "users", "whatsappSessions"},
	"limit_type":  {"messages", "storage", "users", "whatsappSessions"},
	"threshold":   {"50", "80", "90", "100"},
}

// checkSelectors rejects selectors of unknown metrics, matchers on labels the
// metric does not have (billing_usage has metric_type, its limit and
// percentage limit_type), and matcher values outside the known sets.
func checkSelectors(expr string) []string {
	n, err := ParsePromQL(expr)
	if err != nil {
		return []string{"cannot parse: " + err.Error()}
	}
	var errs []string
	for _, s := range Selectors(n) {
		labels, ok := knownMetrics[s.Name]
		if !ok {
			errs = append(errs, fmt.Sprintf("unknown metric %q (not in the exporter's contract nor the backend's counters)", s.Name))
			continue
		}
		for _, m := range s.Matchers {
			if !slices.Contains(labels, m.Name) && !slices.Contains(targetLabels, m.Name) {
				errs = append(errs, fmt.Sprintf("%s has no label %q (its labels: %s)", s.Name, m.Name, strings.Join(append(slices.Clone(labels), targetLabels...), ", ")))
				continue
			}
			values, ok := knownLabelValues[m.Name]
			if !ok || strings.Contains(m.Value, "$") {
				continue
			}
			var vs []string
			switch m.Op {
			case "=", "!=":
				vs = []string{m.Value}
			default: // a regexp: check plain alternatives only
				if regexp.MustCompile(`^[A-Za-z0-9_|]+$`).MatchString(m.Value) {
					vs = strings.Split(m.Value, "|")
				}
			}
			for _, v := range vs {
				if !slices.Contains(values, v) {
					errs = append(errs, fmt.Sprintf("%s{%s%s%q}: %q is not a known %s (%s)", s.Name, m.Name, m.Op, m.Value, v, m.Name, strings.Join(values, ", ")))
				}
			}
		}
	}
	return errs
}

func TestCheckSelectors(t *testing.T) {
	tests := []struct {
		expr    string
		wantErr string // "" means valid
	}{
		{`billing_usage{metric_type="messages",tenant_id="$tenant_id",job="billing_exporter"}`, ""},
		{`billing_usage{metric_type=~"users|whatsappSessions"}`, ""},
		{`billing_usage_percentage{limit_type="messages"} > 80`, ""},
		{`billing_redis_usage_keys_total`, "unknown metric"},                  // the seed's name
		{`billing_usage{limit_type="messages"}`, `has no label "limit_type"`}, // label of the wrong metric
		{`billing_usage_limit{metric_type="messages"}`, `has no label "metric_type"`},
		{`billing_usage{metric_type="whatsapp_sessions"}`, "not a known metric_type"},
		{`billing_tenants_over_threshold{threshold="95"}`, "not a known threshold"},
		{`billing_usage{metric_type=~"users|sessions"}`, `"sessions" is not a known`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			errs := checkSelectors(tt.expr)
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Errorf("checkSelectors(%q) = %v, want none", tt.expr, errs)
			case tt.wantErr != "" && !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.wantErr) }):
				t.Errorf("checkSelectors(%q) = %v, want one containing %q", tt.expr, errs, tt.wantErr)
			}
		})
	}
}

// shippedExpr is one PromQL expression of the shipped content.
type shippedExpr struct {
	Where string // e.g. "alert BillingRedisDown" or "dashboard billing-tenant / Plan / A"
	Expr  string // concrete: Grafana variables replaced
}

// grafanaTestVars stand in for the Grafana variables of dashboard queries.
var grafanaTestVars = map[string]string{
	"tenant_id": "1", "datasource": "prometheus", "job": "billing_exporter", "instance": ".+", "backend_job": ".+",
	"__range": "1h", "__rate_interval": "1m", "__interval": "15s", "__range_s": "3600", "__range_ms": "3600000", "__interval_ms": "15000",
}

// shippedExprs extracts every PromQL expression: alert rules, dashboard
// panel targets and the metric selectors of dashboard variable queries.
func shippedExprs(t *testing.T) []shippedExpr {
	t.Helper()
	var out []shippedExpr
	for _, a := range loadAlerts(t) {
		out = append(out, shippedExpr{Where: "alert " + a.Name() + " (" + a.File + ")", Expr: a.Rule.Expr})
	}
	qs, err := DashboardQueries(repoPath(t, dashboardsDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		e, err := q.Expand(grafanaTestVars)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, shippedExpr{Where: "dashboard " + q.String(), Expr: e})
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
	for uid, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValues.FindStringSubmatch(strings.TrimSpace(v.QueryString()))
			if m == nil {
				t.Errorf("dashboard %s variable %s: query %q is not label_values(<selector>, <label>)", uid, v.Name, v.QueryString())
				continue
			}
			e, err := Query{Expr: m[1]}.Expand(grafanaTestVars)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, shippedExpr{Where: "dashboard " + uid + " variable " + v.Name, Expr: e})
		}
	}
	return out
}

// TestShippedExpressions validates every expression of the rules and the
// dashboards: its syntax by promtool (as recording rules in a temporary rule
// file), and the known mistakes by the checks above.
func TestShippedExpressions(t *testing.T) {
	exprs := shippedExprs(t)

	t.Run("promtool", func(t *testing.T) {
		type recording struct {
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		}
		type group struct {
			Name  string      `yaml:"name"`
			Rules []recording `yaml:"rules"`
		}
		var file struct {
			Groups []group `yaml:"groups"`
		}
		for i, e := range exprs {
			// One group per expression, named after where it comes from,
			// so that promtool's message points at it.
			file.Groups = append(file.Groups, group{
				Name:  fmt.Sprintf("%03d %s", i, e.Where),
				Rules: []recording{{Record: fmt.Sprintf("monitoring_test:expr_%03d", i), Expr: e.Expr}},
			})
		}
		b, err := yaml.Marshal(&file)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "shipped-exprs.rules.yml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runTool(t, "promtool", "check", "rules", path)
		if err != nil || !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", len(exprs))) {
			t.Fatalf("promtool rejects a shipped expression: %v\n%s", err, out)
		}
	})

	for _, e := range exprs {
		t.Run(e.Where, func(t *testing.T) {
			if err := CheckHistogramQuantile(e.Expr); err != nil {
				t.Errorf("%s: %v\n  %s", e.Where, err, e.Expr)
			}
			for _, msg := range checkSelectors(e.Expr) {
				t.Errorf("%s: %s\n  %s", e.Where, msg, e.Expr)
			}
		})
	}
}
