package testserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPrometheusScrapesQueriesAndAlerts(t *testing.T) {
	// A target whose counter grows by one on every scrape.
	var scrapes atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE testserver_gauge gauge\ntestserver_gauge{kind=\"a\"} 42\n"+
			"# TYPE testserver_events_total counter\ntestserver_events_total %d\n", n)
	}))
	defer target.Close()

	rules := filepath.Join(t.TempDir(), "test.rules.yml")
	err := os.WriteFile(rules, []byte(`groups:
  - name: test
    rules:
      - alert: GaugeHigh
        expr: testserver_gauge > 40
        for: 1h
        labels: {severity: info}
        annotations: {summary: 'gauge is {{ $value }}'}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: target
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(target.URL, "http://"))
	p := StartPrometheus(t, config, rules)

	if !p.WaitFor(t, func() bool { return !p.Query(t, `rate(testserver_events_total[1m])`).Empty() }, 30*time.Second) {
		t.Fatal("no rate of the target's counter after 30s")
	}

	v := p.Query(t, `testserver_gauge`)
	if v.Type != "vector" || len(v.Series) != 1 || v.Series[0].Value() != 42 ||
		v.Series[0].Metric["kind"] != "a" || v.Series[0].Metric["job"] != "target" {
		t.Errorf("testserver_gauge: got %+v", v)
	}
	if m := p.Query(t, `testserver_gauge[1m]`); m.Type != "matrix" || len(m.Series) != 1 || len(m.Series[0].Points) < 2 {
		t.Errorf("testserver_gauge[1m]: got %+v", m)
	}
	if s := p.Query(t, `1 + 1`); s.Type != "scalar" || s.Series[0].Value() != 2 {
		t.Errorf("1 + 1: got %+v", s)
	}
	if e := p.Query(t, `testserver_gauge{kind="none"}`); !e.Empty() {
		t.Errorf("a selector of nothing: got %+v", e)
	}
	if _, err := p.TryQuery(`sum(`); err == nil {
		t.Error("a syntax error was not reported")
	}

	var alerts []Alert
	if !p.WaitFor(t, func() bool { alerts = p.Alerts(t); return len(alerts) > 0 }, 30*time.Second) {
		t.Fatal("GaugeHigh not pending after 30s")
	}
	a := alerts[0]
	if a.State != "pending" || a.Labels["alertname"] != "GaugeHigh" || a.Labels["severity"] != "info" ||
		a.Annotations["summary"] != "gauge is 42" {
		t.Errorf("alert: got %+v", a)
	}
	rs := p.Rules(t)
	if len(rs) != 1 || rs[0].Name != "GaugeHigh" || rs[0].Health != "ok" || rs[0].File != rules {
		t.Errorf("rules: got %+v", rs)
	}

	p.Stop()
	if _, err := p.TryQuery(`up`); err == nil {
		t.Error("a query succeeded after Stop")
	}
}
