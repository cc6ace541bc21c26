package monitoring

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Where the shipped monitoring content lives, relative to the repository root.
const (
	alertsGlob       = "alerts/*.yml"
	ruleTestsGlob    = "alerts/tests/*.test.yml"
	runbooksFile     = "docs/runbooks.md"
	alertmanagerFile = "examples/alertmanager.yml"
	dashboardsDir    = "dashboards"

	runbookBase  = "https://github.com/billing-exporter/billing_exporter/blob/main/docs/runbooks.md"
	grafanaBase  = "https://grafana.example.com"
	backendRules = "backend.rules.yml"
)

// repoRoot is the repository root: tests run in monitoring/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

func repoPath(t testing.TB, rel string) string {
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}

func glob(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(repoPath(t, pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no file matches %s", pattern)
	}
	sort.Strings(files)
	return files
}

var toolPackages = map[string]string{
	"promtool": "prometheus",
	"amtool":   "prometheus-alertmanager",
}

// requireTool returns the path of a command-line tool, failing the test (not
// skipping it) when it is not installed.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (not in PATH): the monitoring tests need it. On Debian: apt-get install -y %s", name, toolPackages[name])
	}
	return path
}

// runTool runs a tool from the repository root and returns its combined
// output and error.
func runTool(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	path := requireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = repoRoot(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func readYAML(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ---------------------------------------------------------------- rules

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// firing is one expected alert of a promtool test case.
type firing struct {
	Test        string
	Labels      map[string]string // alertname included
	Annotations map[string]string
}

// alert is one alerting rule with the promtool test cases that cover it.
type alert struct {
	File  string // base name of the rule file
	Rule  rule
	Fires []firing // expected alerts of cases where it fires
	Quiet []string // names of test cases where it is expected not to fire
}

func (a *alert) Name() string { return a.Rule.Alert }

// IsTenantAlert reports whether the alert is about one tenant: its
// annotations name the tenant or its test cases fire with a tenant_id.
func (a *alert) IsTenantAlert() bool {
	for _, v := range a.Rule.Annotations {
		if strings.Contains(v, "$labels.tenant_id") {
			return true
		}
	}
	for _, f := range a.Fires {
		if _, ok := f.Labels["tenant_id"]; ok {
			return true
		}
	}
	return false
}

// loadAlerts reads every alerting rule of alerts/*.yml and attaches the
// promtool test cases of alerts/tests/*.test.yml that load its file.
func loadAlerts(t testing.TB) []*alert {
	t.Helper()
	var alerts []*alert
	byKey := map[string]*alert{} // rule file path + "\x00" + alert name
	for _, f := range glob(t, alertsGlob) {
		var rf ruleFile
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				a := &alert{File: filepath.Base(f), Rule: r}
				key := f + "\x00" + r.Alert
				if byKey[key] != nil {
					t.Errorf("%s: alert %s is defined twice", filepath.Base(f), r.Alert)
				}
				byKey[key] = a
				alerts = append(alerts, a)
			}
		}
	}
	for _, tf := range glob(t, ruleTestsGlob) {
		var rt ruleTestFile
		readYAML(t, tf, &rt)
		for _, rel := range rt.RuleFiles {
			rulePath := filepath.Clean(filepath.Join(filepath.Dir(tf), rel))
			for _, tc := range rt.Tests {
				for _, at := range tc.AlertRuleTest {
					a := byKey[rulePath+"\x00"+at.Alertname]
					if a == nil {
						continue
					}
					if len(at.ExpAlerts) == 0 {
						a.Quiet = append(a.Quiet, tc.Name+" @ "+at.EvalTime)
						continue
					}
					for _, e := range at.ExpAlerts {
						labels := map[string]string{"alertname": at.Alertname}
						for k, v := range e.ExpLabels {
							labels[k] = v
						}
						a.Fires = append(a.Fires, firing{Test: tc.Name + " @ " + at.EvalTime, Labels: labels, Annotations: e.ExpAnnotations})
					}
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("no alerting rule in %s", alertsGlob)
	}
	sort.SliceStable(alerts, func(i, j int) bool { return alerts[i].Name() < alerts[j].Name() })
	return alerts
}

func alertByName(alerts []*alert, name string) *alert {
	for _, a := range alerts {
		if a.Name() == name {
			return a
		}
	}
	return nil
}

// ---------------------------------------------------------------- runbooks

// runbookSection is one "## " section of docs/runbooks.md.
type runbookSection struct {
	Heading string
	Anchor  string
	Body    string
}

var nonAnchorChars = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	s := strings.ToLower(strings.TrimSpace(heading))
	s = nonAnchorChars.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

func loadRunbooks(t testing.TB) map[string]runbookSection {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, runbooksFile))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]runbookSection{}
	var cur *runbookSection
	var body strings.Builder
	flush := func() {
		if cur != nil {
			cur.Body = body.String()
			sections[cur.Anchor] = *cur
		}
		body.Reset()
	}
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(line, "## ") {
			flush()
			h := strings.TrimSpace(strings.TrimPrefix(line, "## "))
			cur = &runbookSection{Heading: h, Anchor: githubAnchor(h)}
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()
	return sections
}
