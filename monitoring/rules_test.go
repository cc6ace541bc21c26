package monitoring

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRuleFilesLoad runs `promtool check rules` on every rule file, as
// Prometheus would load it with rule_files.
func TestRuleFilesLoad(t *testing.T) {
	files := glob(t, alertsGlob)
	for _, want := range []string{"billing.rules.yml", backendRules} {
		if !slices.Contains(files, repoPath(t, "alerts/"+want)) {
			t.Errorf("alerts/%s is missing", want)
		}
	}
	for _, f := range files {
		rel, _ := filepath.Rel(repoRoot(t), f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := runTool(t, "promtool", "check", "rules", rel)
			if err != nil || !strings.Contains(out, "SUCCESS") {
				t.Fatalf("promtool check rules %s: %v\n%s", rel, err, out)
			}
		})
	}
}

// TestRuleUnitTests runs `promtool test rules` on every test file.
func TestRuleUnitTests(t *testing.T) {
	for _, f := range glob(t, ruleTestsGlob) {
		rel, _ := filepath.Rel(repoRoot(t), f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := runTool(t, "promtool", "test", "rules", rel)
			if err != nil || !strings.Contains(out, "SUCCESS") {
				t.Fatalf("promtool test rules %s: %v\n%s", rel, err, out)
			}
		})
	}
}

// seedAlerts are the alerts of the original specification; newAlerts the ones
// added with the exporter. Every one must be shipped.
var (
	seedAlerts = []string{"BillingUsageNearLimit", "BillingLimitExceededFrequent", "BillingRedisDown",
		"BillingRedisHighLatency", "BillingUsageIncrementErrors", "BillingTenantWithoutPlan"}
	newAlerts = []string{"BillingLimitReached", "BillingUsagePredictedToExceed", "BillingPostgresDown",
		"BillingPlansStale", "BillingExporterDown", "BillingRedisReplicaLinkDown", "BillingRedisMirrorDiverged",
		"BillingExporterConfigReloadFailed"}
)

func TestEveryExpectedAlertIsShipped(t *testing.T) {
	alerts := loadAlerts(t)
	for _, name := range append(slices.Clone(seedAlerts), newAlerts...) {
		if alertByName(alerts, name) == nil {
			t.Errorf("alert %s is not in %s", name, alertsGlob)
		}
	}
}

// booleanAlert matches expressions whose value is a 0/1 state, where
// {{ $value }} says nothing a reader can use.
var booleanAlert = regexp.MustCompile(`==\s*[01]\b|absent\(`)

// TestAlertContract checks, for every alert: labels and annotations, a
// promtool test case where it fires and one where it does not, a runbook
// section, and for an alert about one tenant a link to that tenant's
// dashboard.
func TestAlertContract(t *testing.T) {
	alerts := loadAlerts(t)
	runbooks := loadRunbooks(t)
	dashboards := loadDashboards(t)
	for _, a := range alerts {
		t.Run(a.Name(), func(t *testing.T) {
			r := a.Rule
			checks := []struct {
				name  string
				check func() []string
			}{
				{"for", func() []string {
					if r.For == "" {
						return nil
					}
					if _, err := time.ParseDuration(r.For); err != nil {
						return []string{"for: " + err.Error()}
					}
					return nil
				}},
				{"severity", func() []string {
					if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
						return []string{"label severity is " + quote(s) + ", want critical, warning or info"}
					}
					return nil
				}},
				{"annotations", func() []string {
					var errs []string
					for _, k := range []string{"summary", "description", "runbook_url"} {
						if strings.TrimSpace(r.Annotations[k]) == "" {
							errs = append(errs, "annotation "+k+" is missing")
						}
					}
					if !booleanAlert.MatchString(r.Expr) && !strings.Contains(r.Annotations["description"], "$value") {
						errs = append(errs, "the description does not show {{ $value }}")
					}
					return errs
				}},
				{"runbook", func() []string {
					anchor := strings.ToLower(a.Name())
					if want := runbookBase + "#" + anchor; r.Annotations["runbook_url"] != want {
						return []string{"runbook_url is " + quote(r.Annotations["runbook_url"]) + ", want " + quote(want)}
					}
					sec, ok := runbooks[anchor]
					if !ok {
						return []string{runbooksFile + " has no section \"## " + a.Name() + "\""}
					}
					var errs []string
					for _, sub := range []string{"### Meaning", "### Impact", "### Diagnosis", "### Fix"} {
						if !strings.Contains(sec.Body, sub+"\n") {
							errs = append(errs, runbooksFile+" section "+a.Name()+" has no "+quote(sub)+" subsection")
						}
					}
					return errs
				}},
				{"fires in a test", func() []string {
					if len(a.Fires) == 0 {
						return []string{"no promtool test case (" + ruleTestsGlob + ") where it fires"}
					}
					var errs []string
					for _, f := range a.Fires {
						if f.Labels["severity"] != r.Labels["severity"] {
							errs = append(errs, "test "+quote(f.Test)+" expects severity "+quote(f.Labels["severity"]))
						}
						for k := range r.Annotations {
							if _, ok := f.Annotations[k]; !ok {
								errs = append(errs, "test "+quote(f.Test)+" does not spell out annotation "+k)
							}
						}
					}
					return errs
				}},
				{"quiet in a test", func() []string {
					if len(a.Quiet) == 0 {
						return []string{"no promtool test case where it does not fire (just under its threshold or its for)"}
					}
					return nil
				}},
				{"tenant", func() []string {
					if !a.IsTenantAlert() {
						return nil
					}
					var errs []string
					if !strings.Contains(r.Annotations["description"], "$labels.tenant_id") {
						errs = append(errs, "the description of an alert about a tenant does not name it ({{ $labels.tenant_id }})")
					}
					for _, f := range a.Fires {
						if f.Labels["tenant_id"] == "" {
							errs = append(errs, "test "+quote(f.Test)+" fires it without a tenant_id")
						}
					}
					u := r.Annotations["dashboard_url"]
					if want := grafanaBase + "/d/billing-tenant/"; !strings.HasPrefix(u, want) {
						errs = append(errs, "dashboard_url "+quote(u)+" does not start with "+quote(want))
					}
					if !strings.Contains(u, "var-tenant_id={{ $labels.tenant_id") {
						errs = append(errs, "dashboard_url "+quote(u)+" does not select the tenant (var-tenant_id={{ $labels.tenant_id }})")
					}
					return errs
				}},
				{"dashboard_url", func() []string {
					u := r.Annotations["dashboard_url"]
					if u == "" {
						return nil
					}
					return checkDashboardURL(u, dashboards)
				}},
				{"rule file", func() []string {
					n, err := ParsePromQL(r.Expr)
					if err != nil {
						return []string{"cannot parse the expression: " + err.Error()}
					}
					usesBackend := false
					for _, s := range Selectors(n) {
						usesBackend = usesBackend || slices.Contains(BackendMetrics, s.Name)
					}
					if usesBackend != (a.File == backendRules) {
						if usesBackend {
							return []string{"uses the backend's metrics but is in " + a.File + ", not in " + backendRules}
						}
						return []string{"uses only the exporter's metrics but is in " + backendRules}
					}
					return nil
				}},
			}
			for _, c := range checks {
				for _, e := range c.check() {
					t.Errorf("%s (%s): %s", a.Name(), c.name, e)
				}
			}
		})
	}
}

// checkDashboardURL checks that a dashboard link points at a shipped
// dashboard by uid and only sets variables that dashboard has.
func checkDashboardURL(raw string, dashboards map[string]*dashboard) []string {
	// Template actions are not URL syntax: stand a value in for them.
	u, err := url.Parse(regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAllString(raw, "x"))
	if err != nil {
		return []string{"dashboard_url: " + err.Error()}
	}
	m := regexp.MustCompile(`^/d/([^/]+)(/|$)`).FindStringSubmatch(u.Path)
	if m == nil {
		return []string{"dashboard_url " + quote(raw) + " is not a /d/<uid>/... dashboard link"}
	}
	d := dashboards[m[1]]
	if d == nil {
		return []string{"dashboard_url " + quote(raw) + " names dashboard uid " + quote(m[1]) + ", which is not shipped"}
	}
	var errs []string
	for k := range u.Query() {
		name, ok := strings.CutPrefix(k, "var-")
		if ok && !slices.ContainsFunc(d.Templating.List, func(v templateVar) bool { return v.Name == name }) {
			errs = append(errs, "dashboard_url sets "+k+" but dashboard "+d.UID+" has no variable "+name)
		}
	}
	return errs
}

// TestRuleFileHeaders checks that the backend rules say plainly that they
// need the backend's instrumentation.
func TestRuleFileHeaders(t *testing.T) {
	b, err := os.ReadFile(repoPath(t, "alerts/"+backendRules))
	if err != nil {
		t.Fatal(err)
	}
	var header strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		header.WriteString(line + "\n")
	}
	// The header must name every backend metric the file's rules use.
	want := []string{"backend", "prom-client", "does NOT export"}
	for _, a := range loadAlerts(t) {
		if a.File != backendRules {
			continue
		}
		n, err := ParsePromQL(a.Rule.Expr)
		if err != nil {
			t.Fatalf("%s: %v", a.Name(), err)
		}
		for _, s := range Selectors(n) {
			if !slices.Contains(want, s.Name) {
				want = append(want, s.Name)
			}
		}
	}
	for _, want := range want {
		if !strings.Contains(header.String(), want) {
			t.Errorf("the header comment of alerts/%s does not mention %q", backendRules, want)
		}
	}
}

// TestRunbooksHaveNoOrphans checks that every alert-like runbook section
// belongs to a shipped alert, so that renamed alerts do not leave stale
// sections behind.
func TestRunbooksHaveNoOrphans(t *testing.T) {
	alerts := loadAlerts(t)
	for _, sec := range loadRunbooks(t) {
		if !regexp.MustCompile(`^Billing[A-Za-z]+$`).MatchString(sec.Heading) {
			continue
		}
		if alertByName(alerts, sec.Heading) == nil {
			t.Errorf("%s has a section %q for an alert that is not shipped", runbooksFile, sec.Heading)
		}
	}
}

func quote(s string) string { return "\"" + s + "\"" }
