package monitoring

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-jsonnet"
)

// TestMixinDeterministic renders the mixin twice: same files, same bytes.
func TestMixinDeterministic(t *testing.T) {
	a, err := RenderMixin(repoRoot(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RenderMixin(repoRoot(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))) {
		t.Fatalf("two renders give different files: %v and %v", slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
	}
	for path := range a {
		if !bytes.Equal(a[path], b[path]) {
			t.Errorf("%s differs between two renders", path)
		}
	}
}

// TestMixinFilesUpToDate checks that every committed generated file is what
// the mixin renders, and that no dashboard or rule file is left over that
// the mixin no longer renders. Fix with `make mixin`.
func TestMixinFilesUpToDate(t *testing.T) {
	files, err := RenderMixin(repoRoot(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alerts/billing.rules.yml", "alerts/backend.rules.yml", "examples/kubernetes/prometheusrule.yaml",
		"examples/kubernetes/grafana-dashboards.yaml", "dashboards/billing-overview.json", "dashboards/billing-tenant.json",
		"dashboards/redis-health.json"}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("the mixin renders %v, want %v", got, want)
	}
	for path, content := range files {
		committed, err := os.ReadFile(repoPath(t, path))
		if err != nil {
			t.Errorf("%s: %v (run make mixin)", path, err)
			continue
		}
		if !bytes.Equal(committed, content) {
			t.Errorf("%s is not what the mixin renders: run make mixin (and edit mixin/, not the file)", path)
		}
	}
	for _, pattern := range []string{alertsGlob, dashboardsDir + "/*.json"} {
		for _, f := range glob(t, pattern) {
			rel, _ := filepath.Rel(repoRoot(t), f)
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				t.Errorf("%s is not rendered by the mixin", rel)
			}
		}
	}
}

// TestMixinVendored evaluates the mixin as jsonnet-bundler vendors it:
// mixin/ alone under vendor/github.com/billing-exporter/billing_exporter/,
// imported by that path with vendor/ as the only library path. It gives the
// committed alerts and dashboards.
func TestMixinVendored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const path = "github.com/billing-exporter/billing_exporter/mixin"
	if err := os.CopyFS(filepath.Join(dir, "vendor", filepath.FromSlash(path)), os.DirFS(repoPath(t, "mixin"))); err != nil {
		t.Fatal(err)
	}
	var jf struct {
		Version      int   `json:"version"`
		Dependencies []any `json:"dependencies"`
	}
	b, err := os.ReadFile(repoPath(t, "mixin/jsonnetfile.json"))
	if err == nil {
		err = json.Unmarshal(b, &jf)
	}
	if err != nil || jf.Version != 1 || jf.Dependencies == nil {
		t.Errorf("mixin/jsonnetfile.json: %v, %+v: want version 1 and a dependencies list", err, jf)
	}
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{filepath.Join(dir, "vendor")}})
	out, err := vm.EvaluateAnonymousSnippet(filepath.Join(dir, "main.jsonnet"), "local m = import '"+path+"/mixin.libsonnet';\n"+
		"{ groups: m.prometheusAlerts.groups, dashboards: m.grafanaDashboards }")
	if err != nil {
		t.Fatalf("evaluating the vendored mixin: %v", err)
	}
	var got struct {
		Groups     any            `json:"groups"`
		Dashboards map[string]any `json:"dashboards"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	// The committed files, through JSON as the evaluation is.
	asJSON := func(v any) any {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var groups []any
	for _, f := range []string{"alerts/billing.rules.yml", "alerts/backend.rules.yml"} {
		var rf struct {
			Groups []any `yaml:"groups"`
		}
		readYAML(t, repoPath(t, f), &rf)
		groups = append(groups, rf.Groups...)
	}
	if !reflect.DeepEqual(got.Groups, asJSON(groups)) {
		t.Error("the vendored mixin's prometheusAlerts differ from alerts/*.yml")
	}
	files := glob(t, dashboardsDir+"/*.json")
	if len(got.Dashboards) != len(files) {
		t.Errorf("the vendored mixin has %d dashboards, %s has %d", len(got.Dashboards), dashboardsDir, len(files))
	}
	for name, d := range got.Dashboards {
		var want any
		b, err := os.ReadFile(repoPath(t, dashboardsDir+"/"+name))
		if err == nil {
			err = json.Unmarshal(b, &want)
		}
		if err != nil || !reflect.DeepEqual(d, want) {
			t.Errorf("the vendored mixin's %s differs from %s/%s (%v)", name, dashboardsDir, name, err)
		}
	}
}

// TestMixinConfig renders the mixin with another job, Grafana and runbook
// host, and checks that they reach every rule and the dashboards' job
// variable, and that nothing of the defaults is left.
func TestMixinConfig(t *testing.T) {
	files, err := RenderMixin(repoRoot(t), map[string]any{
		"exporterSelector": `job="billing",cluster="eu1"`,
		"grafanaURL":       "https://grafana.mycorp.test",
		"runbookURL":       "https://wiki.mycorp.test/billing-runbooks",
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := string(files["alerts/billing.rules.yml"])
	for _, stale := range []string{`job="billing_exporter"`, "grafana.example.com", "github.com/billing-exporter"} {
		if strings.Contains(rules, stale) {
			t.Errorf("alerts/billing.rules.yml rendered with another config still holds %s", stale)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "billing.rules.yml")
	if err := os.WriteFile(path, files["alerts/billing.rules.yml"], 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, "promtool", "check", "rules", path); err != nil {
		t.Fatalf("promtool check rules on the reconfigured rules: %v\n%s", err, out)
	}
	var rf ruleFile
	readYAML(t, path, &rf)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n, err := ParsePromQL(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range Selectors(n) {
				if !slices.Contains(s.Matchers, Matcher{Name: "job", Op: "=", Value: "billing"}) ||
					!slices.Contains(s.Matchers, Matcher{Name: "cluster", Op: "=", Value: "eu1"}) {
					t.Errorf("%s: %s is not selected by the configured exporterSelector", r.Alert, s.Name)
				}
			}
			if !strings.HasPrefix(r.Annotations["runbook_url"], "https://wiki.mycorp.test/billing-runbooks#") ||
				!strings.HasPrefix(r.Annotations["dashboard_url"], "https://grafana.mycorp.test/d/") {
				t.Errorf("%s: runbook_url %q, dashboard_url %q do not use the configured hosts", r.Alert, r.Annotations["runbook_url"], r.Annotations["dashboard_url"])
			}
		}
	}
	if !strings.Contains(string(files["dashboards/billing-tenant.json"]), `label_values(billing_exporter_build_info{job=\"billing\",cluster=\"eu1\"}, job)`) {
		t.Error("the dashboards' job variable does not use the configured exporterSelector")
	}
}

// TestKubernetesFromMixin checks the Kubernetes objects rendered from the
// mixin: the PrometheusRule holds every rule group (and promtool accepts
// them), the ConfigMap every dashboard under the Grafana sidecar's label.
func TestKubernetesFromMixin(t *testing.T) {
	var rule struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups []map[string]any `yaml:"groups"`
		} `yaml:"spec"`
	}
	readYAML(t, repoPath(t, "examples/kubernetes/prometheusrule.yaml"), &rule)
	if rule.Kind != "PrometheusRule" {
		t.Errorf("prometheusrule.yaml: kind %q", rule.Kind)
	}
	var groups []string
	for _, f := range glob(t, alertsGlob) {
		var rf ruleFile
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			groups = append(groups, g.Name)
		}
	}
	var got []string
	for _, g := range rule.Spec.Groups {
		got = append(got, g["name"].(string))
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(groups))) {
		t.Errorf("PrometheusRule groups %v, want those of alerts/: %v", got, groups)
	}
	// promtool reads rule groups: the spec is one.
	b, err := os.ReadFile(repoPath(t, "examples/kubernetes/prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := b[bytes.Index(b, []byte("\nspec:\n"))+len("\nspec:\n"):]
	path := filepath.Join(t.TempDir(), "spec.rules.yml")
	if err := os.WriteFile(path, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, "promtool", "check", "rules", path); err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules on the PrometheusRule's spec: %v\n%s", err, out)
	}

	var cm struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	readYAML(t, repoPath(t, "examples/kubernetes/grafana-dashboards.yaml"), &cm)
	// kubectl apply keeps the whole object in an annotation of at most
	// 256 KiB.
	if fi, err := os.Stat(repoPath(t, "examples/kubernetes/grafana-dashboards.yaml")); err != nil || fi.Size() > 200<<10 {
		t.Errorf("grafana-dashboards.yaml is too close to kubectl apply's 256 KiB (%v): split the ConfigMap", err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Labels["grafana_dashboard"] != "1" {
		t.Errorf("grafana-dashboards.yaml: kind %q, labels %v; want a ConfigMap labelled grafana_dashboard: \"1\"", cm.Kind, cm.Metadata.Labels)
	}
	for _, f := range glob(t, dashboardsDir+"/*.json") {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := cm.Data[filepath.Base(f)]
		var gotDash, wantDash any
		if !ok || json.Unmarshal([]byte(got), &gotDash) != nil || json.Unmarshal(want, &wantDash) != nil || !reflect.DeepEqual(gotDash, wantDash) {
			t.Errorf("the ConfigMap's %s is missing or is not the dashboard of %s", filepath.Base(f), f)
		}
	}
}

// TestMixinSelectorLabels renders the mixin with env="prod" added to both
// selectors: every selector of every rule, dashboard query and dashboard
// variable carries it, so that a fleet's other environments never mix in.
func TestMixinSelectorLabels(t *testing.T) {
	files, err := RenderMixin(repoRoot(t), map[string]any{
		"exporterSelector": `job="billing_exporter",env="prod"`,
		"backendSelector":  `env="prod"`,
	})
	if err != nil {
		t.Fatal(err)
	}
	prod := Matcher{Name: "env", Op: "=", Value: "prod"}
	check := func(where, expr string) {
		t.Helper()
		n, err := ParsePromQL(expr)
		if err != nil {
			t.Errorf("%s: cannot parse %q: %v", where, expr, err)
			return
		}
		sels := Selectors(n)
		if len(sels) == 0 {
			t.Errorf("%s: no selector in %q", where, expr)
		}
		for _, s := range sels {
			if !slices.Contains(s.Matchers, prod) {
				t.Errorf("%s: %s lacks env=\"prod\" in %q", where, s.Name, expr)
			}
		}
	}
	dir := t.TempDir()
	for path, content := range files {
		switch {
		case strings.HasPrefix(path, "alerts/"):
			f := filepath.Join(dir, filepath.Base(path))
			if err := os.WriteFile(f, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var rf ruleFile
			readYAML(t, f, &rf)
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					check(path+" "+r.Alert, r.Expr)
				}
			}
		case strings.HasPrefix(path, "dashboards/"):
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	queries, err := DashboardQueries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatal("no dashboard query rendered")
	}
	for _, q := range queries {
		expr, err := q.Expand(liveVars)
		if err != nil {
			t.Fatal(err)
		}
		check(q.String(), expr)
	}
	dashboards, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range dashboards {
		d, err := readDashboard(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`).FindStringSubmatch(strings.TrimSpace(v.QueryString()))
			if m == nil {
				t.Errorf("%s variable %s: query %q is not label_values(<selector>, <label>)", d.UID, v.Name, v.QueryString())
				continue
			}
			sel, err := Query{Expr: m[1]}.Expand(liveVars)
			if err != nil {
				t.Fatal(err)
			}
			check(d.UID+" variable "+v.Name, sel)
		}
	}
}

// TestMixinPartialOverride overrides one entry of the nested `for`, as a
// JSON object and from a jsonnet file (make mixin MIXIN_CONFIG=...): that
// entry changes, the others keep their defaults.
func TestMixinPartialOverride(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "config.libsonnet")
	if err := os.WriteFile(cfgFile, []byte("{ exporterSelector: 'job=\"billing\"', 'for'+: { BillingRedisDown: '3m' } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromJSON, err := RenderMixin(repoRoot(t), map[string]any{"for": map[string]any{"BillingRedisDown": "3m"}})
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := RenderMixinFile(repoRoot(t), cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string]map[string][]byte{"JSON": fromJSON, "file": fromFile} {
		path := filepath.Join(t.TempDir(), "billing.rules.yml")
		if err := os.WriteFile(path, files["alerts/billing.rules.yml"], 0o600); err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		readYAML(t, path, &rf)
		got := map[string]string{}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				got[r.Alert] = r.For
			}
		}
		if got["BillingRedisDown"] != "3m" || got["BillingRedisHighLatency"] != "5m" || got["BillingTenantWithoutPlan"] != "30m" {
			t.Errorf("%s override: for durations %v, want BillingRedisDown 3m and the others' defaults", name, got)
		}
	}
	if !strings.Contains(string(fromFile["alerts/billing.rules.yml"]), `billing_redis_up{job="billing"}`) {
		t.Error("the file's exporterSelector did not reach the rules")
	}
}

// TestMixinWindows: an outage window shorter than the continuity window
// would end the hold before a blip's; the mixin refuses it.
func TestMixinWindows(t *testing.T) {
	if _, err := RenderMixin(repoRoot(t), map[string]any{"continuityWindow": "10m", "outageWindow": "5m"}); err == nil ||
		!strings.Contains(err.Error(), "outageWindow (5m) must be at least continuityWindow (10m)") {
		t.Errorf("outageWindow 5m under continuityWindow 10m: err = %v, want the mixin to refuse it", err)
	}
	if _, err := RenderMixin(repoRoot(t), map[string]any{"continuityWindow": "1h30m", "outageWindow": "90m"}); err != nil {
		t.Errorf("equal windows written two ways: %v", err)
	}
}
