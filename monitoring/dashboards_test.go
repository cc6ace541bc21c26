package monitoring

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const datasourceUID = "${datasource}"

func loadDashboards(t testing.TB) map[string]*dashboard {
	t.Helper()
	out := map[string]*dashboard{}
	for _, f := range glob(t, dashboardsDir+"/*.json") {
		d, err := readDashboard(f)
		if err != nil {
			t.Fatal(err)
		}
		if out[d.UID] != nil {
			t.Fatalf("two dashboards have uid %q", d.UID)
		}
		out[d.UID] = d
	}
	return out
}

// tenantMetrics are the per-tenant metrics: on the per-tenant dashboard every
// selector of one must be filtered to $tenant_id.
var tenantMetrics = []string{"billing_usage", "billing_usage_limit", "billing_usage_percentage",
	"billing_tenant_using_defaults", "billing_tenant_plan_info",
	"billing_usage_increment_total", "billing_usage_increment_errors_total", "billing_limit_exceeded_total"}

// grafanaBuiltins are the variables Grafana defines itself.
var grafanaBuiltins = []string{"__range", "__range_s", "__range_ms", "__rate_interval", "__interval", "__interval_ms"}

func TestDashboards(t *testing.T) {
	tests := []struct {
		file  string
		uid   string
		vars  []string // template variables besides datasource
		exprs []string // queries that must be there (substring of an expr, spaces ignored)
		never []string // metrics that must not appear (the seed's mistakes)
	}{
		{
			file: "billing-overview.json", uid: "billing-overview",
			exprs: []string{
				`topk(10, billing_usage{metric_type="messages"})`,
				`sum(billing_usage{metric_type="storage"})`,
				`billing_tenants_over_threshold{threshold="100"}`,
				`sum(rate(billing_limit_exceeded_total[$__rate_interval]))`,
				`billing_tenants_per_plan`,
				`billing_tenant_using_defaults`,
			},
			// The seed showed Redis memory as "storage used" and counted
			// increments instead of reading usage.
			never: []string{"billing_redis_memory_bytes", "billing_usage_increment_total"},
		},
		{
			file: "redis-health.json", uid: "billing-redis",
			exprs: []string{
				`histogram_quantile(0.95, sum by (job, operation, le) (rate(billing_redis_operation_duration_seconds_bucket[$__rate_interval])))`,
				`billing_redis_connections_active`,
				`billing_redis_usage_keys`,
				`billing_redis_memory_bytes`,
				`billing_redis_up`,
				`billing_redis_master_link_up`,
				`billing_redis_mirror_divergent_keys`,
				`billing_exporter_config_last_reload_successful`,
				`billing_exporter_scrape_duration_seconds`,
				`billing_exporter_invalid_data_items`,
				`rate(billing_usage_increment_errors_total[$__rate_interval])`,
			},
			never: []string{"billing_redis_usage_keys_total"},
		},
		{
			file: "billing-tenant.json", uid: "billing-tenant",
			vars: []string{"tenant_id"},
			exprs: []string{
				`billing_usage_percentage{tenant_id="$tenant_id",limit_type="messages"}`,
				`billing_usage_percentage{tenant_id="$tenant_id",limit_type="storage"}`,
				`billing_usage_percentage{tenant_id="$tenant_id",limit_type="users"}`,
				`billing_usage_percentage{tenant_id="$tenant_id",limit_type="whatsappSessions"}`,
				`billing_usage{tenant_id="$tenant_id",metric_type="messages"}`,
				`billing_usage{tenant_id="$tenant_id",metric_type="storage"}`,
				`billing_limit_exceeded_total{tenant_id="$tenant_id"}`,
				`billing_tenant_plan_info{tenant_id="$tenant_id"}`,
			},
			never: []string{"billing_usage_increment_total"},
		},
	}
	dir := repoPath(t, dashboardsDir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != len(tests) {
		t.Errorf("%s holds %d dashboards, the test knows %d: add the new one to the table", dashboardsDir, len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.uid, func(t *testing.T) {
			d, err := readDashboard(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range checkDashboard(d, tt.uid, tt.vars) {
				t.Error(e)
			}
			var exprs []string
			for _, p := range d.allPanels() {
				for _, tg := range p.Targets {
					exprs = append(exprs, tg.Expr)
				}
			}
			for _, want := range tt.exprs {
				// The scoping matchers are checked by checkDashboard.
				if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(unscoped(e), squash(want)) }) {
					t.Errorf("no panel queries %s", want)
				}
			}
			for _, e := range exprs {
				n, err := ParsePromQL(e)
				if err != nil {
					t.Errorf("cannot parse %q: %v", e, err)
					continue
				}
				for _, s := range Selectors(n) {
					if slices.Contains(tt.never, s.Name) {
						t.Errorf("%q uses %s", e, s.Name)
					}
				}
			}
		})
	}
}

// squash removes white space, for comparing expressions.
func squash(s string) string { return strings.Join(strings.Fields(s), "") }

// unscoped is squash without the job and instance matchers every query has.
func unscoped(s string) string {
	s = squash(s)
	for _, m := range []string{`job=~"$job",instance=~"$instance",`, `{job=~"$job",instance=~"$instance"}`,
		`job=~"$backend_job",`, `{job=~"$backend_job"}`} {
		s = strings.ReplaceAll(s, m, "")
	}
	return s
}

// scopeMatchers are the matchers every selector of a dashboard query must
// have: the exporter's job and instance, or the backend's job.
var (
	exporterScope = []Matcher{{Name: "job", Op: "=~", Value: "$job"}, {Name: "instance", Op: "=~", Value: "$instance"}}
	backendScope  = []Matcher{{Name: "job", Op: "=~", Value: "$backend_job"}}
)

// checkScoped checks that every selector of expr is scoped by the
// dashboard's variables, so that several exporters (or jobs) are never
// summed together.
func checkScoped(title, expr string) []string {
	n, err := ParsePromQL(expr)
	if err != nil {
		return []string{fmt.Sprintf("panel %q: cannot parse %q: %v", title, expr, err)}
	}
	var errs []string
	for _, s := range Selectors(n) {
		want := exporterScope
		if slices.Contains(BackendMetrics, s.Name) {
			want = backendScope
		}
		for _, m := range want {
			if !slices.Contains(s.Matchers, m) {
				errs = append(errs, fmt.Sprintf("panel %q: %s is not scoped by %s%s%q in %q", title, s.Name, m.Name, m.Op, m.Value, expr))
			}
		}
	}
	return errs
}

// checkDashboard checks a dashboard's import-ability and conventions.
func checkDashboard(d *dashboard, uid string, vars []string) []string {
	var errs []string
	errf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if d.UID != uid {
		errf("uid is %q, want %q (uids are stable: links and alerts use them)", d.UID, uid)
	}
	if d.ID != nil {
		errf("id is %v, want null so that the dashboard imports into any Grafana", d.ID)
	}
	if d.Title == "" {
		errf("no title")
	}
	if d.SchemaVersion < 36 {
		errf("schemaVersion %d, want 36 or later (datasource references by uid)", d.SchemaVersion)
	}
	if !slices.Contains(d.Tags, "billing") {
		errf("tags %v lack \"billing\", which the dashboard links use", d.Tags)
	}

	// Template variables.
	defined := slices.Clone(grafanaBuiltins)
	dsVars := 0
	for _, v := range d.Templating.List {
		defined = append(defined, v.Name)
		switch v.Type {
		case "datasource":
			dsVars++
			if v.Name != "datasource" || v.QueryString() != "prometheus" {
				errf("datasource variable %q has query %q, want a variable named datasource with query prometheus", v.Name, v.QueryString())
			}
		case "query":
			if v.Datasource == nil || v.Datasource.UID != datasourceUID {
				errf("variable %s does not query ${datasource}", v.Name)
			}
		}
	}
	if dsVars != 1 {
		errf("%d datasource variables, want exactly 1", dsVars)
	}
	for _, name := range vars {
		if !slices.Contains(defined, name) {
			errf("no %s variable", name)
		}
	}
	// job and instance variables on every dashboard; the tenant variable
	// lists every known tenant (plan info), not only those with usage.
	wantQueries := map[string]string{
		"job":       `label_values(billing_exporter_build_info{job="billing_exporter"}, job)`,
		"instance":  `label_values(billing_exporter_build_info{job=~"$job"}, instance)`,
		"tenant_id": `label_values({__name__=~"billing_tenant_plan_info|billing_usage",job=~"$job",instance=~"$instance"}, tenant_id)`,
	}
	for _, name := range []string{"job", "instance"} {
		if !slices.Contains(defined, name) {
			errf("no %s variable", name)
		}
	}
	for _, v := range d.Templating.List {
		if want, ok := wantQueries[v.Name]; ok && squash(v.QueryString()) != squash(want) {
			errf("%s variable has query %q, want %s", v.Name, v.QueryString(), want)
		}
	}

	// Panels.
	ids := map[int]bool{}
	type rect struct {
		title      string
		x, y, w, h int
	}
	var rects []rect
	for _, p := range d.allPanels() {
		if p.ID <= 0 || ids[p.ID] {
			errf("panel %q has id %d: ids must be positive and unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			errf("panel %q has gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, r := range rects {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				errf("panels %q and %q overlap", r.title, p.Title)
			}
		}
		rects = append(rects, rect{p.Title, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			errf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceUID || p.Datasource.Type != "prometheus" {
			errf("panel %q: datasource is %+v, want {type: prometheus, uid: ${datasource}}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			errf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != datasourceUID {
				errf("panel %q target %s: datasource is %+v, want uid ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				errf("panel %q: target refId %q is empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				errf("panel %q target %s has no expression", p.Title, tg.RefID)
				continue
			}
			q := Query{Expr: tg.Expr}
			for _, v := range q.Variables() {
				if !slices.Contains(defined, v) {
					errf("panel %q uses $%s, which the dashboard does not define", p.Title, v)
				}
			}
			if slices.Contains(vars, "tenant_id") {
				errs = append(errs, checkTenantFiltered(p.Title, tg.Expr)...)
			}
			errs = append(errs, checkScoped(p.Title, tg.Expr)...)
			if strings.Contains(tg.Expr, "rate(") && !strings.Contains(tg.Expr, "[$__rate_interval]") {
				errf("panel %q: a rate over a fixed window, not $__rate_interval: %s", p.Title, tg.Expr)
			}
		}
	}
	return errs
}

// checkTenantFiltered checks that every per-tenant selector of a per-tenant
// dashboard query is filtered to the selected tenant.
func checkTenantFiltered(title, expr string) []string {
	n, err := ParsePromQL(expr)
	if err != nil {
		return []string{fmt.Sprintf("panel %q: cannot parse %q: %v", title, expr, err)}
	}
	var errs []string
	for _, s := range Selectors(n) {
		if !slices.Contains(tenantMetrics, s.Name) {
			continue
		}
		if !slices.Contains(s.Matchers, Matcher{Name: "tenant_id", Op: "=", Value: "$tenant_id"}) {
			errs = append(errs, fmt.Sprintf("panel %q: %s is not filtered to tenant_id=\"$tenant_id\" in %q", title, s.Name, expr))
		}
	}
	return errs
}

func TestDashboardQueries(t *testing.T) {
	qs, err := DashboardQueries(repoPath(t, dashboardsDir))
	if err != nil {
		t.Fatal(err)
	}
	perUID := map[string]int{}
	for _, q := range qs {
		perUID[q.DashboardUID]++
		if q.PanelTitle == "" || q.RefID == "" || q.File == "" || q.PanelID == 0 || q.DashboardTitle == "" {
			t.Errorf("incomplete query %+v", q)
		}
	}
	for _, uid := range []string{"billing-overview", "billing-redis", "billing-tenant"} {
		if perUID[uid] == 0 {
			t.Errorf("no query from dashboard %s", uid)
		}
	}
	// Every variable a query uses can be given a value, after which it parses.
	vars := map[string]string{"tenant_id": "1", "job": "billing_exporter", "instance": ".+", "backend_job": ".+", "__range": "1h", "__rate_interval": "1m", "__interval": "15s"}
	for _, q := range qs {
		e, err := q.Expand(vars)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if strings.Contains(e, "$") {
			t.Errorf("%s: %q still holds a variable", q, e)
		}
	}
	if _, err := DashboardQueries(t.TempDir()); err == nil {
		t.Error("DashboardQueries of an empty directory did not fail")
	}
}

func TestQueryHelpers(t *testing.T) {
	vars := map[string]string{"tenant_id": "42", "__range": "1h"}
	tests := []struct {
		expr      string
		variables []string
		expanded  string // "" means Expand fails
		backend   bool
	}{
		{`billing_usage{tenant_id="$tenant_id"}`, []string{"tenant_id"}, `billing_usage{tenant_id="42"}`, false},
		{`billing_usage{tenant_id="${tenant_id}"}`, []string{"tenant_id"}, `billing_usage{tenant_id="42"}`, false},
		{`billing_usage{tenant_id="${tenant_id:raw}"}`, []string{"tenant_id"}, `billing_usage{tenant_id="42"}`, false},
		{`billing_usage{tenant_id="[[tenant_id]]"}`, []string{"tenant_id"}, `billing_usage{tenant_id="42"}`, false},
		{`sum(increase(billing_limit_exceeded_total{tenant_id="$tenant_id"}[$__range]))`, []string{"__range", "tenant_id"},
			`sum(increase(billing_limit_exceeded_total{tenant_id="42"}[1h]))`, true},
		{`rate(x[$__rate_interval])`, []string{"__rate_interval"}, "", false},
		{`sum(rate(billing_usage_increment_errors_total[5m]))`, nil, `sum(rate(billing_usage_increment_errors_total[5m]))`, true},
		{`billing_usage_increment_total_other`, nil, `billing_usage_increment_total_other`, false},
		{`billing_usage`, nil, `billing_usage`, false},
		{`label_replace(billing_usage, "t", "tenant $1", "tenant_id", "(.*)")`, nil, `label_replace(billing_usage, "t", "tenant $1", "tenant_id", "(.*)")`, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			q := Query{Expr: tt.expr}
			if got := q.Variables(); !slices.Equal(got, tt.variables) {
				t.Errorf("Variables() = %v, want %v", got, tt.variables)
			}
			got, err := q.Expand(vars)
			switch {
			case tt.expanded == "" && err == nil:
				t.Errorf("Expand() = %q, want an error", got)
			case tt.expanded != "" && (err != nil || got != tt.expanded):
				t.Errorf("Expand() = %q, %v, want %q", got, err, tt.expanded)
			}
			if q.UsesBackendMetrics() != tt.backend {
				t.Errorf("UsesBackendMetrics() = %v, want %v", !tt.backend, tt.backend)
			}
		})
	}
}
