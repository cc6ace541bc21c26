package testserver

import (
	"context"
	"fmt"
	"math"
	"net/http"
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

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
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

	api promv1.API // client_golang's HTTP API client

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
		client, err := api.NewClient(api.Config{Address: p.URL()})
		if err != nil {
			t.Fatal(err)
		}
		p.api = promv1.NewAPI(client)
		err = p.start(bin, configPath, filepath.Join(dir, fmt.Sprintf("data-%d", attempt)))
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
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	v, warnings, _, err := p.api.Query(ctx, expr, time.Now())
	if err != nil {
		return QueryResult{}, fmt.Errorf("query %q: %w", expr, err)
	}
	r := QueryResult{Type: v.Type().String(), Warnings: warnings}
	switch v := v.(type) {
	case model.Vector:
		for _, s := range v {
			r.Series = append(r.Series, Series{Metric: labelMap(s.Metric), Points: []Point{{s.Timestamp.Time(), float64(s.Value)}}})
		}
	case model.Matrix:
		for _, s := range v {
			out := Series{Metric: labelMap(s.Metric)}
			for _, pt := range s.Values {
				out.Points = append(out.Points, Point{pt.Timestamp.Time(), float64(pt.Value)})
			}
			r.Series = append(r.Series, out)
		}
	case *model.Scalar:
		r.Series = []Series{{Metric: map[string]string{}, Points: []Point{{v.Timestamp.Time(), float64(v.Value)}}}}
	case *model.String:
		// The value is not a number: keep the time.
		r.Series = []Series{{Metric: map[string]string{}, Points: []Point{{v.Timestamp.Time(), math.NaN()}}}}
	default:
		return r, fmt.Errorf("query %q: unknown result type %q", expr, v.Type())
	}
	return r, nil
}

func labelMap[T ~map[model.LabelName]model.LabelValue](m T) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[string(k)] = string(v)
	}
	return out
}

// apiTimeout bounds every HTTP API call.
const apiTimeout = 10 * time.Second

// Alert is one entry of /api/v1/alerts: an alert that is pending or firing.
type Alert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string // "pending" or "firing"
	ActiveAt    time.Time
	Value       string
}

// Alerts returns the pending and firing alerts (/api/v1/alerts).
func (p *Prometheus) Alerts(t testing.TB) []Alert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	res, err := p.api.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Alert, 0, len(res.Alerts))
	for _, a := range res.Alerts {
		out = append(out, Alert{Labels: labelMap(a.Labels), Annotations: labelMap(a.Annotations),
			State: string(a.State), ActiveAt: a.ActiveAt, Value: a.Value})
	}
	return out
}

// Rule is one rule of /api/v1/rules, with its evaluation health.
type Rule struct {
	Group     string
	File      string
	Name      string
	Query     string
	Type      string // "alerting" or "recording"
	Health    string // "ok", "err" or "unknown" (not evaluated yet)
	LastError string
	State     string // alerting rules: "inactive", "pending" or "firing"
}

// Rules returns every loaded rule (/api/v1/rules).
func (p *Prometheus) Rules(t testing.TB) []Rule {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	res, err := p.api.Rules(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []Rule
	for _, g := range res.Groups {
		for _, r := range g.Rules {
			switch r := r.(type) {
			case promv1.AlertingRule:
				out = append(out, Rule{Group: g.Name, File: g.File, Name: r.Name, Query: r.Query, Type: "alerting",
					Health: string(r.Health), LastError: r.LastError, State: r.State})
			case promv1.RecordingRule:
				out = append(out, Rule{Group: g.Name, File: g.File, Name: r.Name, Query: r.Query, Type: "recording",
					Health: string(r.Health), LastError: r.LastError})
			}
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
