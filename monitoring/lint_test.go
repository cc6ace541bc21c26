package monitoring

// The monitoring mixins' lint rules, ported to the rendered alerts/*.yml
// and dashboards/*.json: mixtool's alert and dashboard checks
// (github.com/monitoring-mixins/mixtool, pkg/mixer/lint.go) and the rules
// of grafana/dashboard-linter's lint.NewRuleSet that mixtool runs (lint/),
// with mixin/.lint's exclusions applied as both tools apply them.

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const lintConfigFile = "mixin/.lint"

type lintDash struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Editable   bool   `json:"editable"`
	Templating struct {
		List []lintVar `json:"list"`
	} `json:"templating"`
	Panels []lintPanel `json:"panels"`
}

type lintVar struct {
	templateVar
	Datasource json.RawMessage `json:"datasource"`
	Label      string          `json:"label"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Refresh    int             `json:"refresh"`
}

type lintPanel struct {
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Type        string          `json:"type"`
	Datasource  json.RawMessage `json:"datasource"`
	Targets     []struct {
		Expr    string `json:"expr"`
		PanelID int    `json:"panelId"`
	} `json:"targets"`
	Panels      []lintPanel `json:"panels"`
	FieldConfig *struct {
		Defaults struct {
			Unit     string          `json:"unit"`
			Mappings json.RawMessage `json:"mappings"`
		} `json:"defaults"`
		Overrides []struct {
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Options struct {
		ReduceOptions struct {
			Fields string `json:"fields"`
		} `json:"reduceOptions"`
	} `json:"options"`
}

// lintSubject is what one rule looks at: an alert group, an alert, a
// dashboard, a panel of it or a target of that panel.
type lintSubject struct {
	group  string
	rules  []rule
	alert  *rule
	dash   *lintDash
	panel  *lintPanel
	target int
}

type lintKind int

const (
	lintGroup lintKind = iota
	lintAlert
	lintDashboard
	lintPanelKind
	lintTarget
)

type lintRule struct {
	name  string
	kind  lintKind
	check func(s lintSubject) []string
}

// lintFinding is one rule's complaint about one subject.
type lintFinding struct {
	rule, group, alert, dashboard, panel string
	target                               int
	msg                                  string
}

func (f lintFinding) String() string {
	where := "alert group " + quote(f.group)
	switch {
	case f.alert != "":
		where = "alert " + f.alert
	case f.panel != "" && f.target >= 0:
		where = fmt.Sprintf("dashboard %q panel %q target %d", f.dashboard, f.panel, f.target)
	case f.panel != "":
		where = fmt.Sprintf("dashboard %q panel %q", f.dashboard, f.panel)
	case f.dashboard != "":
		where = "dashboard " + quote(f.dashboard)
	}
	return "[" + f.rule + "] " + where + ": " + f.msg
}

// lintConfig is a mixtool/dashboard-linter .lint file: per rule, the
// findings to exclude (every finding when a rule lists no entries).
type lintConfig struct {
	Exclusions map[string]*struct {
		Reason  string `yaml:"reason"`
		Entries []struct {
			Reason    string `yaml:"reason"`
			Dashboard string `yaml:"dashboard"`
			Panel     string `yaml:"panel"`
			Alert     string `yaml:"alert"`
		} `yaml:"entries"`
	} `yaml:"exclusions"`
}

// excluded ports lint.ConfigurationFile.Apply and mixtool's isLintExcluded.
func (c lintConfig) excluded(f lintFinding) bool {
	ex, ok := c.Exclusions[f.rule]
	if !ok {
		return false
	}
	if ex == nil || len(ex.Entries) == 0 {
		return true
	}
	for _, e := range ex.Entries {
		if f.dashboard == "" {
			if e.Alert == f.alert+f.group {
				return true
			}
			continue
		}
		if (e.Dashboard == "" || e.Dashboard == f.dashboard) && (e.Panel == "" || f.panel == "" || e.Panel == f.panel) {
			return true
		}
	}
	return false
}

var (
	camelCase     = regexp.MustCompile(`^([A-Z]+[a-z0-9]+)+$`)
	goTemplate    = regexp.MustCompile(`\{\{.+}\}`)
	sentence      = regexp.MustCompile(`^[A-Z].+\.$`)
	labelFunction = regexp.MustCompile(`([a-z_]+)\((.+)\)`)
	// The duration dashboard-linter gives $__rate_interval, so that a
	// range written with it can be told from a fixed one.
	rateIntervalSample = 8869990787 * time.Millisecond
	grafanaGlobals     = map[string]string{"__rate_interval": "8869990787ms", "__interval": "4867856611ms",
		"__interval_ms": "7781188786", "__range_ms": "6737667980", "__range_s": "9397795485", "__range": "6069770749ms", "__auto": "12345ms"}
	lintVariable = regexp.MustCompile(`\$([[:word:]]+)|\$\{([^}]+)\}|\[\[([^\[\]]+)\]\]`)
)

// lintExpand ports dashboard-linter's expandVariables: variables outside
// double-quoted strings become sample values (globals) or their own name.
func lintExpand(expr string) string {
	parts := strings.Split(expr, `"`)
	for i := 0; i < len(parts); i += 2 {
		parts[i] = lintVariable.ReplaceAllStringFunc(parts[i], func(m string) string {
			s := lintVariable.FindStringSubmatch(m)
			name, _, _ := strings.Cut(s[1]+s[2]+s[3], ":")
			if v, ok := grafanaGlobals[name]; ok {
				return v
			}
			if strings.HasPrefix(name, "__auto_interval") {
				return "10s"
			}
			return name
		})
	}
	return strings.Join(parts, `"`)
}

func lintParse(expr string) (parser.Expr, error) { return promqlParser.ParseExpr(lintExpand(expr)) }

// dsUID ports lint.GetDataSource: a datasource is a uid string or an
// object with a uid.
func dsUID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var o struct {
		UID *string `json:"uid"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.UID == nil {
		return "", fmt.Errorf("invalid datasource %s", raw)
	}
	return *o.UID, nil
}

func (d *lintDash) datasourceVars() []lintVar {
	var out []lintVar
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			out = append(out, v)
		}
	}
	return out
}

// prometheus reports whether the dashboard's first datasource variable is
// Prometheus': dashboard-linter runs its PromQL rules only then.
func (d *lintDash) prometheus() bool {
	ds := d.datasourceVars()
	return len(ds) > 0 && ds[0].QueryString() == "prometheus"
}

func panelIs(p *lintPanel, types ...string) bool { return slices.Contains(types, p.Type) }

// Panel types as dashboard-linter's rules list them.
var (
	valuePanels = []string{"stat", "singlestat", "graph", "table", "timeseries", "gauge"}
	queryPanels = []string{"singlestat", "gauge", "table", "stat", "state-timeline", "timeseries"}
)

// grafanaUnits are the unit ids of Grafana's value formats, as
// dashboard-linter's panel-units-rule lists them.
var grafanaUnits = strings.Fields(`none string short percent percentunit humidity dB hex0x hex sci locale pixel
	accMS2 accFS2 accG degree radian grad arcmin arcsec areaM2 areaF2 areaMI2
	flops mflops gflops tflops pflops eflops zflops yflops
	ppm conppb conngm3 conngNm3 conμgm3 conμgNm3 conmgm3 conmgNm3 congm3 congNm3 conmgdL conmmolL
	currencyUSD currencyGBP currencyEUR currencyJPY currencyRUB currencyUAH currencyBRL currencyDKK currencyISK
	currencyNOK currencySEK currencyCZK currencyCHF currencyPLN currencyBTC currencymBTC currencyμBTC currencyZAR
	currencyINR currencyKRW currencyIDR currencyPHP currencyVND
	bytes decbytes bits decbits kbytes deckbytes mbytes decmbytes gbytes decgbytes tbytes dectbytes pbytes decpbytes
	pps binBps Bps binbps bps KiBs Kibits KBs Kbits MiBs Mibits MBs Mbits GiBs Gibits GBs Gbits TiBs Tibits TBs Tbits PiBs Pibits PBs Pbits
	dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS dateTimeAsUSNoDateIfToday dateTimeAsLocal
	dateTimeAsLocalNoDateIfToday dateTimeAsSystem dateTimeFromNow
	watt kwatt megwatt gwatt mwatt Wm2 voltamp kvoltamp voltampreact kvoltampreact watth watthperkg kwatth kwattm
	amph kamph mamph joule ev amp kamp mamp volt kvolt mvolt dBm ohm kohm Mohm farad µfarad nfarad pfarad ffarad
	henry mhenry µhenry lumens flowgpm flowcms flowcfs flowcfm litreh flowlpm flowmlpm lux
	forceNm forcekNm forceN forcekN Hs KHs MHs GHs THs PHs EHs massmg massg masslb masskg masst
	lengthmm lengthin lengthft lengthm lengthkm lengthmi
	pressurembar pressurebar pressurekbar pressurepa pressurehpa pressurekpa pressurehg pressurepsi
	radbq radci radgy radrad radsv radmsv radusv radrem radexpckg radr radsvh radmsvh radusvh
	rotrpm rothz rotrads rotdegs celsius fahrenheit kelvin
	hertz ns µs ms s m h d dtdurationms dtdurations dthms dtdhms timeticks clockms clocks
	cps ops reqps rps wps iops cpm opm rpm wpm mps mpm velocityms velocitykmh velocitymph velocityknot
	mlitre litre m3 Nm3 dm3 gallons bool bool_yes_no bool_on_off`)

// checkVariable ports dashboard-linter's checkTemplate (template-job-rule,
// template-instance-rule); includeAll is checked too, as allValue only
// applies with it.
func checkVariable(d *lintDash, name string) []string {
	i := slices.IndexFunc(d.Templating.List, func(v lintVar) bool { return v.Name == name })
	if i < 0 {
		return []string{"is missing the " + name + " template"}
	}
	v := d.Templating.List[i]
	var errs []string
	uid, err := dsUID(v.Datasource)
	if err != nil {
		errs = append(errs, fmt.Sprintf("%s template has invalid datasource %v", name, err))
	}
	if !slices.Contains([]string{"$datasource", "${datasource}", "$prometheus_datasource", "${prometheus_datasource}"}, uid) {
		errs = append(errs, fmt.Sprintf("%s template should use datasource '$datasource', is currently '%s'", name, uid))
	}
	if v.Type != "query" {
		errs = append(errs, fmt.Sprintf("%s template should be a Prometheus query, is currently '%s'", name, v.Type))
	}
	if want := strings.ToUpper(name[:1]) + name[1:]; v.Label != want {
		errs = append(errs, fmt.Sprintf("%s template should be a labeled '%s', is currently '%s'", name, want, v.Label))
	}
	if !v.Multi {
		errs = append(errs, name+" template should be a multi select")
	}
	if !v.IncludeAll {
		errs = append(errs, name+" template should include All")
	}
	if v.AllValue != ".+" {
		errs = append(errs, fmt.Sprintf("%s template allValue should be '.+', is currently '%s'", name, v.AllValue))
	}
	return errs
}

// targetMatcherRule ports newTargetRequiredMatcherRule: every selector of
// a PromQL target has name=~"$name".
func targetMatcherRule(name string) lintRule {
	return lintRule{"target-" + name + "-rule", lintTarget, func(s lintSubject) []string {
		expr := s.panel.Targets[s.target].Expr
		n, err := lintParse(expr)
		if !s.dash.prometheus() || err != nil {
			return nil
		}
		var errs []string
		for _, sel := range parser.ExtractSelectors(n) {
			msg := name + " selector not found"
			for _, m := range sel {
				if m.Name != name {
					continue
				}
				if m.Type == labels.MatchRegexp && m.Value == "$"+name {
					msg = ""
					break
				}
				msg = fmt.Sprintf("%s selector is %s%q, not =~%q", name, m.Type, m.Value, "$"+name)
			}
			if msg != "" {
				errs = append(errs, fmt.Sprintf("invalid PromQL query '%s': %s", expr, msg))
			}
		}
		return errs
	}}
}

// inspector adapts a function to parser.Visitor, as dashboard-linter does.
type inspector func(parser.Node, []parser.Node) error

func (f inspector) Visit(n parser.Node, path []parser.Node) (parser.Visitor, error) {
	if err := f(n, path); err != nil {
		return nil, err
	}
	return f, nil
}

var lintRules = []lintRule{
	// mixtool: alert-group-rule-count, alert-group-name-length.
	{"alert-group-rule-count", lintGroup, func(s lintSubject) []string {
		if len(s.rules) > 20 {
			return []string{fmt.Sprintf("contains more than 20 rules (%d)", len(s.rules))}
		}
		return nil
	}},
	{"alert-group-name-length", lintGroup, func(s lintSubject) []string {
		if len(s.group) > 40 {
			return []string{"name exceeds 40 characters"}
		}
		return nil
	}},
	// mixtool's alert guidelines (monitoring.mixins.dev).
	{"alert-name-camelcase", lintAlert, func(s lintSubject) []string {
		if !camelCase.MatchString(s.alert.Alert) {
			return []string{"name is not in camel case"}
		}
		return nil
	}},
	{"alert-name-length", lintAlert, func(s lintSubject) []string {
		if len(s.alert.Alert) > 40 {
			return []string{"name exceeds 40 characters"}
		}
		return nil
	}},
	{"alert-severity-rule", lintAlert, func(s lintSubject) []string {
		if sev := s.alert.Labels["severity"]; sev != "warning" && sev != "critical" && sev != "info" {
			return []string{"severity must be 'warning', 'critical' or 'info', is currently " + quote(sev)}
		}
		return nil
	}},
	{"alert-description-missing-rule", lintAlert, func(s lintSubject) []string {
		if _, ok := s.alert.Annotations["description"]; !ok {
			return []string{"must have annotation 'description'"}
		}
		return nil
	}},
	{"alert-description-templating", lintAlert, func(s lintSubject) []string {
		if d, ok := s.alert.Annotations["description"]; ok && !goTemplate.MatchString(d) {
			return []string{"annotation 'description' must use templates, is currently " + quote(d)}
		}
		return nil
	}},
	{"alert-summary-missing-rule", lintAlert, func(s lintSubject) []string {
		if _, ok := s.alert.Annotations["summary"]; !ok {
			return []string{"must have annotation 'summary'"}
		}
		return nil
	}},
	{"alert-summary-templating", lintAlert, func(s lintSubject) []string {
		if sum, ok := s.alert.Annotations["summary"]; ok && goTemplate.MatchString(sum) {
			return []string{"annotation 'summary' must not use templates"}
		}
		return nil
	}},
	{"alert-summary-style", lintAlert, func(s lintSubject) []string {
		if sum, ok := s.alert.Annotations["summary"]; ok && !sentence.MatchString(sum) {
			return []string{"annotation 'summary' must start with capital letter and end with period, is currently " + quote(sum)}
		}
		return nil
	}},
	// mixtool: a dashboard has a title and a uid.
	{"dashboard-title-uid", lintDashboard, func(s lintSubject) []string {
		var errs []string
		if s.dash.Title == "" {
			errs = append(errs, "dashboard has no title")
		}
		if s.dash.UID == "" {
			errs = append(errs, "dashboard has no UID, please set one for links to work")
		}
		return errs
	}},
	// dashboard-linter: template-datasource-rule.
	{"template-datasource-rule", lintDashboard, func(s lintSubject) []string {
		ds := s.dash.datasourceVars()
		if len(ds) == 0 {
			return []string{"does not have a templated data source"}
		}
		var errs []string
		for _, v := range ds {
			q := strings.ToLower(v.QueryString())
			names := []string{q + "_datasource"}
			labels := []string{strings.ToUpper(q[:1]) + q[1:] + " data source"}
			if len(ds) == 1 {
				names, labels = append(names, "datasource"), append(labels, "Data source")
			}
			if !slices.Contains(names, v.Name) {
				errs = append(errs, fmt.Sprintf("templated data source variable named '%s', should be named one of %q", v.Name, names))
			}
			if !slices.Contains(labels, v.Label) {
				errs = append(errs, fmt.Sprintf("templated data source variable labeled '%s', should be labeled one of %q", v.Label, labels))
			}
		}
		return errs
	}},
	// dashboard-linter: template-job-rule, template-instance-rule.
	{"template-job-rule", lintDashboard, func(s lintSubject) []string {
		if !s.dash.prometheus() {
			return nil
		}
		return checkVariable(s.dash, "job")
	}},
	{"template-instance-rule", lintDashboard, func(s lintSubject) []string {
		if !s.dash.prometheus() {
			return nil
		}
		return checkVariable(s.dash, "instance")
	}},
	// dashboard-linter: template-label-promql-rule. The selector of
	// label_values(selector, label) is parsed without its label argument.
	{"template-label-promql-rule", lintDashboard, func(s lintSubject) []string {
		if !s.dash.prometheus() {
			return nil
		}
		var errs []string
		for _, v := range s.dash.Templating.List {
			if v.Type != "query" {
				continue
			}
			q := v.QueryString()
			m := labelFunction.FindStringSubmatch(q)
			switch {
			case m == nil:
				errs = append(errs, fmt.Sprintf("template '%s' invalid templated label '%s': invalid 'query'", v.Name, q))
			case !slices.Contains([]string{"label_names", "label_values", "metrics", "query_result"}, m[1]):
				errs = append(errs, fmt.Sprintf("template '%s' invalid templated label '%s': invalid 'function': %s", v.Name, q, m[1]))
			default:
				arg := m[2]
				if i := strings.LastIndex(arg, ","); m[1] == "label_values" && i >= 0 {
					arg = arg[:i]
				}
				if _, err := lintParse(arg); m[1] != "metrics" && err != nil {
					errs = append(errs, fmt.Sprintf("template '%s' invalid templated label '%s': %v", v.Name, q, err))
				}
			}
		}
		return errs
	}},
	// dashboard-linter: template-on-time-change-reload-rule.
	{"template-on-time-change-reload-rule", lintDashboard, func(s lintSubject) []string {
		var errs []string
		for _, v := range s.dash.Templating.List {
			if v.Type == "query" && v.Refresh != 2 {
				errs = append(errs, fmt.Sprintf("variable '%s' should be refreshed 'On Time Range Change (value 2)', is currently '%d'", v.Name, v.Refresh))
			}
		}
		return errs
	}},
	// dashboard-linter: uneditable-dashboard.
	{"uneditable-dashboard", lintDashboard, func(s lintSubject) []string {
		if s.dash.Editable {
			return []string{"is editable, it should be set to 'editable: false'"}
		}
		return nil
	}},
	// dashboard-linter: panel-datasource-rule.
	{"panel-datasource-rule", lintPanelKind, func(s lintSubject) []string {
		if !panelIs(s.panel, "singlestat", "graph", "table", "timeseries") {
			return nil
		}
		var allowed []string
		for _, v := range s.dash.datasourceVars() {
			allowed = append(allowed, "$"+v.Name, "${"+v.Name+"}")
		}
		uid, err := dsUID(s.panel.Datasource)
		if err != nil {
			return []string{"has invalid datasource: " + err.Error()}
		}
		if !slices.Contains(allowed, uid) {
			return []string{"does not use a templated datasource, uses " + quote(uid)}
		}
		return nil
	}},
	// dashboard-linter: panel-title-description-rule.
	{"panel-title-description-rule", lintPanelKind, func(s lintSubject) []string {
		if panelIs(s.panel, valuePanels...) && (s.panel.Title == "" || s.panel.Description == "") {
			return []string{"has missing title or description"}
		}
		return nil
	}},
	// dashboard-linter: panel-units-rule, on bar gauges and pie charts too.
	{"panel-units-rule", lintPanelKind, func(s lintSubject) []string {
		p := s.panel
		if !panelIs(p, append(valuePanels, "bargauge", "piechart")...) {
			return nil
		}
		if p.Type == "stat" && p.Options.ReduceOptions.Fields != "" {
			return nil
		}
		unit := ""
		if fc := p.FieldConfig; fc != nil {
			for _, o := range fc.Overrides {
				for _, prop := range o.Properties {
					if prop.ID == "mappings" && prop.Value != nil {
						return nil
					}
					if u, ok := prop.Value.(string); ok && prop.ID == "unit" {
						unit = u
					}
				}
			}
			if m := string(fc.Defaults.Mappings); m != "" && m != "null" {
				return nil
			}
			if unit == "" {
				unit = fc.Defaults.Unit
			}
		}
		if !slices.Contains(grafanaUnits, unit) {
			return []string{"has no or invalid units defined: " + quote(unit)}
		}
		return nil
	}},
	// dashboard-linter: panel-no-targets-rule.
	{"panel-no-targets-rule", lintPanelKind, func(s lintSubject) []string {
		if panelIs(s.panel, "stat", "singlestat", "graph", "table", "timeseries", "gauge") && s.panel.Targets == nil {
			return []string{"has no targets"}
		}
		return nil
	}},
	// dashboard-linter: target-promql-rule.
	{"target-promql-rule", lintTarget, func(s lintSubject) []string {
		if !s.dash.prometheus() || !panelIs(s.panel, queryPanels...) {
			return nil
		}
		t := s.panel.Targets[s.target]
		if t.Expr == "" && t.PanelID > 0 {
			return nil
		}
		if _, err := lintParse(t.Expr); err != nil {
			return []string{fmt.Sprintf("invalid PromQL query '%s': %v", t.Expr, err)}
		}
		return nil
	}},
	// dashboard-linter: target-rate-interval-rule.
	{"target-rate-interval-rule", lintTarget, func(s lintSubject) []string {
		expr := s.panel.Targets[s.target].Expr
		n, err := lintParse(expr)
		if !s.dash.prometheus() || !panelIs(s.panel, queryPanels...) || err != nil {
			return nil
		}
		err = parser.Walk(inspector(func(node parser.Node, parents []parser.Node) error {
			ms, ok := node.(*parser.MatrixSelector)
			if !ok || ms.Range == rateIntervalSample || len(parents) == 0 {
				return nil
			}
			call, ok := parents[len(parents)-1].(*parser.Call)
			if !ok {
				return fmt.Errorf("invalid PromQL query '%s': $__rate_interval used in non-rate function", expr)
			}
			if call.Func.Name == "rate" || call.Func.Name == "irate" {
				return fmt.Errorf("invalid PromQL query '%s': should use $__rate_interval", expr)
			}
			return nil
		}), n, nil)
		if err != nil {
			return []string{err.Error()}
		}
		return nil
	}},
	// dashboard-linter: target-job-rule, target-instance-rule.
	targetMatcherRule("job"),
	targetMatcherRule("instance"),
	// dashboard-linter: target-counter-agg-rule, on the metric's name (the
	// upstream rule reads the selector's text, matchers included).
	{"target-counter-agg-rule", lintTarget, func(s lintSubject) []string {
		n, err := lintParse(s.panel.Targets[s.target].Expr)
		if err != nil {
			return nil
		}
		err = parser.Walk(inspector(func(node parser.Node, parents []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok || !strings.HasSuffix(vs.Name, "_total") {
				return nil
			}
			if len(parents) >= 2 {
				_, ranged := parents[len(parents)-1].(*parser.MatrixSelector)
				call, ok := parents[len(parents)-2].(*parser.Call)
				if ranged && ok && slices.Contains([]string{"rate", "irate", "increase"}, call.Func.Name) {
					return nil
				}
			}
			return fmt.Errorf("counter metric '%s' is not aggregated with rate, irate, or increase", vs)
		}), n, nil)
		if err != nil {
			return []string{err.Error()}
		}
		return nil
	}},
}

// runLint runs every rule over the alert groups of rule files and the
// dashboards, and returns the findings config does not exclude.
func runLint(files []ruleFile, dashboards []*lintDash, config lintConfig) []lintFinding {
	var out []lintFinding
	add := func(r lintRule, s lintSubject, f lintFinding) {
		f.rule, f.target = r.name, -1
		if r.kind == lintTarget {
			f.target = s.target
		}
		for _, msg := range r.check(s) {
			f.msg = msg
			if !config.excluded(f) {
				out = append(out, f)
			}
		}
	}
	for _, r := range lintRules {
		for _, rf := range files {
			for _, g := range rf.Groups {
				if r.kind == lintGroup {
					add(r, lintSubject{group: g.Name, rules: g.Rules}, lintFinding{group: g.Name})
				}
				for i := range g.Rules {
					if r.kind == lintAlert && g.Rules[i].Alert != "" {
						add(r, lintSubject{alert: &g.Rules[i]}, lintFinding{alert: g.Rules[i].Alert})
					}
				}
			}
		}
		for _, d := range dashboards {
			if r.kind == lintDashboard {
				add(r, lintSubject{dash: d}, lintFinding{dashboard: d.Title})
			}
			var walk func([]lintPanel)
			walk = func(ps []lintPanel) {
				for i := range ps {
					p := &ps[i]
					f := lintFinding{dashboard: d.Title, panel: p.Title}
					if r.kind == lintPanelKind {
						add(r, lintSubject{dash: d, panel: p}, f)
					}
					for ti := range p.Targets {
						if r.kind == lintTarget {
							add(r, lintSubject{dash: d, panel: p, target: ti}, f)
						}
					}
					walk(p.Panels)
				}
			}
			walk(d.Panels)
		}
	}
	return out
}

func loadLintConfig(t testing.TB) lintConfig {
	t.Helper()
	var c lintConfig
	b, err := os.ReadFile(repoPath(t, lintConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", lintConfigFile, err)
	}
	return c
}

func loadLintDashboards(t testing.TB, paths []string) []*lintDash {
	t.Helper()
	var out []*lintDash
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var d lintDash
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, &d)
	}
	return out
}

// TestMixinLint lints the shipped alerts and dashboards: no finding that
// mixin/.lint does not exclude, and no exclusion that excludes nothing.
func TestMixinLint(t *testing.T) {
	t.Parallel()
	var files []ruleFile
	for _, f := range glob(t, alertsGlob) {
		var rf ruleFile
		readYAML(t, f, &rf)
		files = append(files, rf)
	}
	dashboards := loadLintDashboards(t, glob(t, dashboardsDir+"/*.json"))
	config := loadLintConfig(t)
	for _, f := range runLint(files, dashboards, config) {
		t.Error(f)
	}
	all := runLint(files, dashboards, lintConfig{})
	for rule := range config.Exclusions {
		if !slices.ContainsFunc(all, func(f lintFinding) bool { return f.rule == rule && config.excluded(f) }) {
			t.Errorf("%s excludes %s findings, but there is none", lintConfigFile, rule)
		}
	}
}

// TestLintRules checks that each ported rule reports a fixture that breaks
// it, naming the alert, dashboard or panel, and that exclusions apply.
func TestLintRules(t *testing.T) {
	t.Parallel()
	var bad ruleFile
	if err := yaml.Unmarshal([]byte(`groups:
- name: a-group-whose-name-is-longer-than-forty-characters
  rules:
  - alert: billing_down
    labels: {severity: page}
    annotations: {summary: '{{ $labels.instance }} is down'}
  - alert: BillingAlertWhoseNameIsLongerThanFortyCharacters
    labels: {severity: info}
    annotations: {summary: 'Fine.', description: 'Static.'}
  - alert: BillingBare
    labels: {severity: info}
`), &bad); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		bad.Groups[0].Rules = append(bad.Groups[0].Rules, rule{Record: "r"})
	}
	var dash lintDash
	if err := json.Unmarshal([]byte(`{"title": "Bad", "editable": true, "templating": {"list": [
	  {"name": "ds", "label": "DS", "type": "datasource", "query": "prometheus"},
	  {"name": "job", "label": "Job", "type": "query", "datasource": "${ds}", "query": "label_values(up, job)", "refresh": 2},
	  {"name": "x", "type": "query", "query": "values(up)", "refresh": 1}]},
	  "panels": [{"title": "Rates", "type": "timeseries", "datasource": {"uid": "prom"},
	    "targets": [{"expr": "rate(x_total[5m])"}, {"expr": "x_total{job=~\"$job\"}"}, {"expr": "sum("}]},
	  {"title": "Empty", "type": "stat", "description": "d", "fieldConfig": {"defaults": {"unit": "short"}}}]}`), &dash); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, f := range runLint([]ruleFile{bad}, []*lintDash{&dash}, lintConfig{}) {
		got[f.rule] = append(got[f.rule], f.String())
	}
	for _, r := range lintRules {
		if len(got[r.name]) == 0 {
			t.Errorf("rule %s reports nothing on its fixture", r.name)
		}
	}
	for rule, want := range map[string]string{
		"alert-group-rule-count":       `alert group "a-group-whose-name-is-longer-than-forty-characters": contains more than 20 rules (23)`,
		"alert-name-camelcase":         "alert billing_down: name is not in camel case",
		"alert-description-templating": `alert BillingAlertWhoseNameIsLongerThanFortyCharacters: annotation 'description' must use templates`,
		"uneditable-dashboard":         `dashboard "Bad": is editable`,
		"panel-units-rule":             `dashboard "Bad" panel "Rates": has no or invalid units defined: ""`,
		"target-counter-agg-rule":      `dashboard "Bad" panel "Rates" target 1: counter metric`,
		"target-rate-interval-rule":    `dashboard "Bad" panel "Rates" target 0: invalid PromQL query 'rate(x_total[5m])': should use $__rate_interval`,
	} {
		if !slices.ContainsFunc(got[rule], func(f string) bool { return strings.Contains(f, want) }) {
			t.Errorf("%s findings %q lack %q", rule, got[rule], want)
		}
	}
	var config lintConfig
	if err := yaml.Unmarshal([]byte(`exclusions:
  alert-name-camelcase:
    entries: [{alert: billing_down}]
  panel-units-rule:
  target-job-rule:
    entries: [{dashboard: Bad, panel: Other}]
`), &config); err != nil {
		t.Fatal(err)
	}
	left := map[string]int{}
	for _, f := range runLint([]ruleFile{bad}, []*lintDash{&dash}, config) {
		left[f.rule]++
	}
	if left["alert-name-camelcase"] != 0 || left["panel-units-rule"] != 0 || left["target-job-rule"] != len(got["target-job-rule"]) {
		t.Errorf("with exclusions, findings per rule: %v", left)
	}
}
