package testserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// prometheusPackage is what to install when the server binary is missing.
const prometheusPackage = "prometheus"

// Prometheus is a Prometheus server started for one test: its own config
// file and TSDB in a temp dir, on a free loopback port.
type Prometheus struct {
	t       testing.TB
	dir     string
	logPath string
	Port    int
	prefix  string // route prefix, unique to this server

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // the process's exit status, once exited is closed
}

// StartPrometheus writes configYAML to a config file and starts Debian's
// prometheus on it, with a fresh TSDB and the lifecycle API enabled, and
// waits until /-/ready answers. ruleFiles (made absolute) are added to the
// configuration as rule_files, which configYAML must then not set itself.
// The server is stopped at test cleanup; when the test has failed, its log
// is written to the test output.
//
// The server serves under a route prefix of its own (see URL), so that a
// server another test started on the same port first cannot pass for this
// one; when the port was taken, another one is tried.
func StartPrometheus(t testing.TB, configYAML string, ruleFiles ...string) *Prometheus {
	t.Helper()
	bin := RequireBinary(t, "prometheus", prometheusPackage)
	dir := t.TempDir()
	config := withRuleFiles(t, configYAML, ruleFiles)
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		p := &Prometheus{
			t:       t,
			dir:     dir,
			logPath: filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt)),
			Port:    FreePort(t),
			prefix:  fmt.Sprintf("/prometheus-%d-%d", os.Getpid(), prometheusCounter.Add(1)),
			exited:  make(chan struct{}),
		}
		err := p.start(bin, configPath, filepath.Join(dir, fmt.Sprintf("data-%d", attempt)))
		if err == nil {
			return p
		}
		if attempt < 3 && strings.Contains(p.Log(), "address already in use") {
			continue
		}
		t.Fatalf("prometheus on %s: %v\nconfiguration:\n%s\nlog:\n%s", p.addr(), err, config, p.Log())
	}
}

var prometheusCounter atomic.Int64

// withRuleFiles adds a rule_files list to the configuration.
func withRuleFiles(t testing.TB, configYAML string, ruleFiles []string) string {
	t.Helper()
	if len(ruleFiles) == 0 {
		return configYAML
	}
	if regexp.MustCompile(`(?m)^rule_files\s*:`).MatchString(configYAML) {
		t.Fatal("StartPrometheus: pass rule files either in the configuration or as arguments, not both")
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(configYAML, "\n"))
	b.WriteString("\nrule_files:\n")
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("rule file: %v", err)
		}
		fmt.Fprintf(&b, "  - %s\n", strconv.Quote(abs))
	}
	return b.String()
}

// start runs the server and waits until it is ready. When it is not, the
// process is stopped and the error says why.
func (p *Prometheus) start(bin, configPath, dataDir string) error {
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"--config.file="+configPath,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+p.addr(),
		"--web.external-url="+p.URL(),
		"--web.enable-lifecycle",
		"--log.level=info",
	)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a signal sent to the test's group (a
	// terminal's ^C) does not race with the orderly stop below.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()

	err = waitFor(30*time.Second, func() error {
		select {
		case <-p.exited:
			return fmt.Errorf("exited at start: %v", p.err)
		default:
		}
		resp, err := http.Get(p.URL() + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Stop()
		return err
	}
	t := p.t
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("prometheus log (%s):\n%s", p.logPath, p.Log())
		}
	})
	return nil
}

func (p *Prometheus) addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// URL is the server's base URL, route prefix included, e.g.
// http://127.0.0.1:40123/prometheus-811-1: the API is under URL()+"/api/v1".
func (p *Prometheus) URL() string { return "http://" + p.addr() + p.prefix }

// Log returns what the server has logged so far.
func (p *Prometheus) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 10 s) and waits
// until it has exited. It is safe to call more than once.
func (p *Prometheus) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Point is one sample of a query result.
type Point struct {
	T time.Time
	V float64
}

// Series is one series of a query result: its labels (__name__ included
// when the result keeps it) and its samples, one for an instant vector or
// a scalar, several for a range vector.
type Series struct {
	Metric map[string]string
	Points []Point
}

// Value is the last sample's value.
func (s Series) Value() float64 {
	if len(s.Points) == 0 {
		return 0
	}
	return s.Points[len(s.Points)-1].V
}

// String formats the series as name{labels} => values.
func (s Series) String() string {
	var labels []string
	for k, v := range s.Metric {
		if k != "__name__" {
			labels = append(labels, k+"="+strconv.Quote(v))
		}
	}
	sort.Strings(labels)
	var vals []string
	for _, pt := range s.Points {
		vals = append(vals, strconv.FormatFloat(pt.V, 'g', -1, 64))
	}
	return fmt.Sprintf("%s{%s} => %s", s.Metric["__name__"], strings.Join(labels, ","), strings.Join(vals, " "))
}

// QueryResult is the data of an /api/v1/query answer.
type QueryResult struct {
	// Type is "vector", "matrix", "scalar" or "string".
	Type string
	// Series holds the result; a scalar is one series without labels.
	// Empty when the query selected nothing.
	Series []Series
	// Warnings are the API's warnings, if any.
	Warnings []string
}

// Empty reports whether the result holds no sample.
func (r QueryResult) Empty() bool {
	for _, s := range r.Series {
		if len(s.Points) > 0 {
			return false
		}
	}
	return true
}

// Query evaluates a PromQL expression at the current time through the HTTP
// API (/api/v1/query) and fails the test if Prometheus refuses it.
func (p *Prometheus) Query(t testing.TB, expr string) QueryResult {
	t.Helper()
	r, err := p.TryQuery(expr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TryQuery is Query returning the error instead of failing the test.
func (p *Prometheus) TryQuery(expr string) (QueryResult, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	warnings, err := p.api("/api/v1/query", url.Values{"query": {expr}}, &data)
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q: %w", expr, err)
	}
	r := QueryResult{Type: data.ResultType, Warnings: warnings}
	switch data.ResultType {
	case "vector", "matrix":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  *rawPoint         `json:"value"`
			Values []rawPoint        `json:"values"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return r, fmt.Errorf("query %q: %v", expr, err)
		}
		for _, s := range raw {
			out := Series{Metric: s.Metric}
			if s.Value != nil {
				out.Points = append(out.Points, Point(*s.Value))
			}
			for _, v := range s.Values {
				out.Points = append(out.Points, Point(v))
			}
			r.Series = append(r.Series, out)
		}
	case "scalar", "string":
		var v rawPoint
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return r, fmt.Errorf("query %q: %v", expr, err)
		}
		r.Series = []Series{{Metric: map[string]string{}, Points: []Point{Point(v)}}}
	default:
		return r, fmt.Errorf("query %q: unknown result type %q", expr, data.ResultType)
	}
	return r, nil
}

// Alert is one entry of /api/v1/alerts: an alert that is pending or firing.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // "pending" or "firing"
	ActiveAt    time.Time         `json:"activeAt"`
	Value       string            `json:"value"`
}

// Alerts returns the pending and firing alerts (/api/v1/alerts).
func (p *Prometheus) Alerts(t testing.TB) []Alert {
	t.Helper()
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if _, err := p.api("/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	return data.Alerts
}

// Rule is one rule of /api/v1/rules, with its evaluation health.
type Rule struct {
	Group     string `json:"-"`
	File      string `json:"-"`
	Name      string `json:"name"`
	Query     string `json:"query"`
	Type      string `json:"type"`   // "alerting" or "recording"
	Health    string `json:"health"` // "ok", "err" or "unknown" (not evaluated yet)
	LastError string `json:"lastError"`
	State     string `json:"state"` // alerting rules: "inactive", "pending" or "firing"
}

// Rules returns every loaded rule (/api/v1/rules).
func (p *Prometheus) Rules(t testing.TB) []Rule {
	t.Helper()
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if _, err := p.api("/api/v1/rules", nil, &data); err != nil {
		t.Fatal(err)
	}
	var out []Rule
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			r.Group, r.File = g.Name, g.File
			out = append(out, r)
		}
	}
	return out
}

// WaitFor polls cond (every 200 ms) until it returns true or timeout
// passes, and reports whether it did; the caller says what was awaited.
// It gives up at once if the server has exited.
func (p *Prometheus) WaitFor(t testing.TB, cond func() bool, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		select {
		case <-p.exited:
			t.Errorf("prometheus exited: %v", p.err)
			return false
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// api GETs an HTTP API endpoint and decodes the "data" of a successful
// answer into data; it returns the answer's warnings.
func (p *Prometheus) api(path string, params url.Values, data any) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := p.URL() + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%s: %s: %v: %.200s", path, resp.Status, err, body)
	}
	if env.Status != "success" {
		return env.Warnings, fmt.Errorf("%s: %s: %s: %s", path, resp.Status, env.ErrorType, env.Error)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return env.Warnings, fmt.Errorf("%s: %v", path, err)
	}
	return env.Warnings, nil
}

// rawPoint is the API's [<unix time>, "<value>"] pair.
type rawPoint Point

func (rp *rawPoint) UnmarshalJSON(b []byte) error {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	var ts float64
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return fmt.Errorf("sample time: %v", err)
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return fmt.Errorf("sample value: %v", err)
	}
	v, err := strconv.ParseFloat(s, 64) // also parses NaN, +Inf and -Inf
	if err != nil {
		// A "string" result: keep the time, the value is not a number.
		v = 0
	}
	rp.T = time.Unix(0, int64(ts*1e9))
	rp.V = v
	return nil
}
