package monitoring

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Query is one PromQL query of a dashboard panel target, as written in the
// dashboard: Grafana variables such as $tenant_id and $__range are left in
// Expr (see Variables and Expand).
type Query struct {
	DashboardUID   string // the dashboard's stable uid, e.g. "billing-tenant"
	DashboardTitle string
	File           string // base name of the dashboard file
	PanelID        int
	PanelTitle     string
	RefID          string
	Expr           string
	// Instant is true when the panel asks for the last value only (an
	// instant query); false for a range query over the dashboard's time.
	Instant bool
}

// BackendMetrics are the metrics the SaaS backend exports with prom-client
// (the seed's instrumentation), which billing_exporter does not. A query that
// uses one returns data only where the backend is instrumented and scraped.
var BackendMetrics = []string{
	"billing_usage_increment_total",
	"billing_usage_increment_errors_total",
	"billing_limit_exceeded_total",
}

// UsesBackendMetrics reports whether the query reads one of BackendMetrics.
func (q Query) UsesBackendMetrics() bool {
	for _, m := range BackendMetrics {
		if regexp.MustCompile(`(^|[^a-zA-Z0-9_:])` + m + `($|[^a-zA-Z0-9_:])`).MatchString(q.Expr) {
			return true
		}
	}
	return false
}

// String names the query for test output: "uid / panel title / refId".
func (q Query) String() string {
	return fmt.Sprintf("%s / %s / %s", q.DashboardUID, q.PanelTitle, q.RefID)
}

// grafanaVar matches the three Grafana variable syntaxes: $name, ${name} or
// ${name:format}, and [[name]]. A name does not start with a digit, so the
// $1 of a label_replace replacement is not a variable.
var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]`)

// Variables returns the names of the Grafana variables Expr uses (such as
// "tenant_id" or "__range"), sorted, without duplicates.
func (q Query) Variables() []string {
	var names []string
	for _, m := range grafanaVar.FindAllStringSubmatch(q.Expr, -1) {
		names = append(names, m[1]+m[2]+m[3])
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// Expand returns Expr with every Grafana variable replaced by its value in
// vars, as Grafana would before sending the query to Prometheus; for example
// {"tenant_id": "1", "__range": "1h"}. It fails when Expr uses a variable
// that vars does not give.
func (q Query) Expand(vars map[string]string) (string, error) {
	var missing []string
	out := grafanaVar.ReplaceAllStringFunc(q.Expr, func(s string) string {
		m := grafanaVar.FindStringSubmatch(s)
		name := m[1] + m[2] + m[3]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return s
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: no value for Grafana variable(s) %s", q, strings.Join(missing, ", "))
	}
	return out, nil
}

// dashboard is the part of a Grafana dashboard JSON model the monitoring
// tests read.
type dashboard struct {
	ID            any      `json:"id"`
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	SchemaVersion int      `json:"schemaVersion"`
	Tags          []string `json:"tags"`
	Templating    struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type templateVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
}

// QueryString returns the variable's query whether Grafana stored it as a
// string or as an object with a "query" field.
func (v templateVar) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Instant    bool           `json:"instant"`
	Hide       bool           `json:"hide"`
	Datasource *datasourceRef `json:"datasource"`
}

// allPanels returns the dashboard's panels, those inside collapsed rows
// included, in order.
func (d *dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func readDashboard(path string) (*dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.UID == "" {
		return nil, fmt.Errorf("%s: dashboard has no uid", path)
	}
	return &d, nil
}

// DashboardQueries returns the PromQL query of every panel target of every
// Grafana dashboard (*.json) in dir, in file and panel order, so that a test
// can run each against a live Prometheus (after Expand). Targets with an
// empty expression are left out; hidden ones are kept.
func DashboardQueries(dir string) ([]Query, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no dashboard (*.json) in " + dir)
	}
	sort.Strings(files)
	var out []Query
	for _, f := range files {
		d, err := readDashboard(f)
		if err != nil {
			return nil, err
		}
		for _, p := range d.allPanels() {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					continue
				}
				out = append(out, Query{
					DashboardUID:   d.UID,
					DashboardTitle: d.Title,
					File:           filepath.Base(f),
					PanelID:        p.ID,
					PanelTitle:     p.Title,
					RefID:          t.RefID,
					Expr:           t.Expr,
					Instant:        t.Instant,
				})
			}
		}
	}
	return out, nil
}
