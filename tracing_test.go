package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// jaegerEnv names the Jaeger binary the tracing test runs. `make
// test-tracing` builds it from tools/jaeger/go.mod (a slow build, kept out
// of `make test`) and sets it; without it TestTracesInJaeger is skipped.
const jaegerEnv = "BILLING_EXPORTER_JAEGER"

// jaeger is a running Jaeger v2 (all in one, in-memory storage).
type jaeger struct {
	otlp  map[string]string // OTLP base URL by protocol, for OTEL_EXPORTER_OTLP_ENDPOINT
	query string            // query service base URL
}

func startJaeger(t *testing.T, bin string) *jaeger {
	t.Helper()
	ports := make([]int, 5)
	for i := range ports {
		ports[i] = testserver.FreePort(t)
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	config := fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %s
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
      grpc:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, addr(0), addr(1), addr(2), addr(3), addr(4))
	file := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", file)
	var out testserver.LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("jaeger output:\n%s", out.String())
		}
	})
	j := &jaeger{
		otlp:  map[string]string{"http/protobuf": "http://" + addr(3), "grpc": "http://" + addr(4)},
		query: "http://" + addr(1),
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(j.query + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("jaeger exited at start: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger query not serving after 60s: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jaegerSpan and jaegerTrace are what the query API (/api/traces) returns.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
}

func (s *jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s *jaegerSpan) tag(key string) (any, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return nil, false
}

// find returns the spans of tr named name.
func (tr *jaegerTrace) find(name string) []*jaegerSpan {
	var out []*jaegerSpan
	for i := range tr.Spans {
		if tr.Spans[i].OperationName == name {
			out = append(out, &tr.Spans[i])
		}
	}
	return out
}

// children returns the names of the spans whose parent is id.
func (tr *jaegerTrace) children(id string) map[string]int {
	out := map[string]int{}
	for i := range tr.Spans {
		if tr.Spans[i].parent() == id {
			out[tr.Spans[i].OperationName]++
		}
	}
	return out
}

// traces returns the service's traces Jaeger holds.
func (j *jaeger) traces(t *testing.T, service string) []jaegerTrace {
	t.Helper()
	resp, err := http.Get(j.query + "/api/traces?limit=100&lookback=1h&service=" + url.QueryEscape(service))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []jaegerTrace `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil // the service is unknown until its first span arrives
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Data
}

// TestTracesInJaeger runs the exporter with OTLP, over HTTP and over gRPC,
// pointed at a real Jaeger, scrapes it and calls the API, and finds the
// traces through Jaeger's query API: the span tree of a scrape, the API
// request continuing the caller's W3C trace, its route template as the
// span name, and the link from a request that reused a read to that read's
// span.
func TestTracesInJaeger(t *testing.T) {
	bin := os.Getenv(jaegerEnv)
	if bin == "" {
		t.Skip(jaegerEnv + " is not set: `make test-tracing` builds Jaeger and runs this test")
	}
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			tracesInJaeger(t, startJaeger(t, bin), protocol)
		})
	}
}

// tracesInJaeger is TestTracesInJaeger over one OTLP protocol, with a
// Jaeger of its own.
func tracesInJaeger(t *testing.T, j *jaeger, protocol string) {
	redis := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC)
	const secretTenant = "tenant-7f3a"
	redis.HSet("usage:1:"+cur.ID, "messages", 4250)
	redis.HSet("usage:"+secretTenant+":"+cur.ID, "messages", 1)
	e := startExporter(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlp[protocol],
		"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
		"OTEL_BSP_SCHEDULE_DELAY=100", // ms: send spans at once
		"OTEL_SERVICE_NAME=",          // the default: billing_exporter
		"OTEL_TRACES_SAMPLER=", "OTEL_SDK_DISABLED=", "OTEL_TRACES_EXPORTER=",
	}, "--redis.addr="+redis.Addr(), "--plans.file="+writeFile(t, "plans.yml", plansYAML),
		"--plans.refresh-interval=0") // the plans load is part of the scrape's read
	if want := "exporter=\"otlp (" + protocol + ")\""; !strings.Contains(e.Output(), want) {
		t.Errorf("the start log does not say %s:\n%s", want, e.Output())
	}

	e.scrape()
	// An API caller's W3C trace context: the request span continues it.
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/api/v1/tenants/"+secretTenant+"/usage", nil)
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tenant usage: status %d", resp.StatusCode)
	}
	// Right after the scrape: the list reuses the scrape's read.
	get(t, e.URL+"/api/v1/tenants")

	var traces []jaegerTrace
	var scrape, usage, list *jaegerTrace
	deadline := time.Now().Add(60 * time.Second)
	for scrape == nil || usage == nil || list == nil {
		if time.Now().After(deadline) {
			t.Fatalf("traces not all in Jaeger after 60s: scrape %v, usage %v, list %v; have %d traces", scrape != nil, usage != nil, list != nil, len(traces))
		}
		time.Sleep(200 * time.Millisecond)
		traces = j.traces(t, "billing_exporter")
		scrape, usage, list = nil, nil, nil
		for i := range traces {
			tr := &traces[i]
			switch {
			case len(tr.find("GET /metrics")) == 1 && len(tr.find("render metrics")) == 1 && len(tr.find("billing join")) == 1:
				scrape = tr
			case len(tr.find("GET /api/v1/tenants/{tenant_id}/usage")) == 1 && len(tr.find("redis HGETALL")) == 1:
				usage = tr
			case len(tr.find("GET /api/v1/tenants")) == 1 && len(tr.find("render JSON")) == 1:
				list = tr
			}
		}
	}

	// The scrape: request → read → Redis round trips, plans, join; and
	// the render.
	root := scrape.find("GET /metrics")[0]
	if p := root.parent(); p != "" {
		t.Errorf("scrape span has a parent %s", p)
	}
	rootKids := scrape.children(root.SpanID)
	if rootKids["billing read"] != 1 || rootKids["render metrics"] != 1 {
		t.Errorf("children of GET /metrics = %v, want billing read and render metrics", rootKids)
	}
	read := scrape.find("billing read")[0]
	readKids := scrape.children(read.SpanID)
	for _, name := range []string{"redis SCAN", "redis INFO", "plans load", "billing join"} {
		if readKids[name] != 1 {
			t.Errorf("children of billing read = %v, want one %q", readKids, name)
		}
	}
	// Two hash readers, each with its own connection and span.
	if readKids["redis HGETALL"] < 1 {
		t.Errorf("children of billing read = %v, want redis HGETALL", readKids)
	}
	scan := scrape.find("redis SCAN")[0]
	if v, _ := scan.tag("redis.keys"); v != float64(2) {
		t.Errorf("redis SCAN redis.keys = %v, want 2", v)
	}
	if v, _ := scan.tag("redis.round_trips"); v == nil || v.(float64) < 1 {
		t.Errorf("redis SCAN redis.round_trips = %v", v)
	}
	// Tenants 1, 2 and 3 of the plans file, and the one with usage only.
	if v, _ := read.tag("billing.tenants"); v != float64(4) {
		t.Errorf("billing read billing.tenants = %v, want 4", v)
	}
	if v, _ := root.tag("billing.read"); v != "started" {
		t.Errorf("scrape's billing.read = %v, want started", v)
	}

	// The API request: the caller's trace, the route template.
	if usage.TraceID != callerTrace {
		t.Errorf("tenant usage trace %s, want the caller's %s", usage.TraceID, callerTrace)
	}
	if p := usage.find("GET /api/v1/tenants/{tenant_id}/usage")[0].parent(); p != callerSpan {
		t.Errorf("tenant usage span's parent = %q, want the caller's span %s", p, callerSpan)
	}

	// The list reused the scrape's read: a link to it, not a read of its own.
	ls := list.find("GET /api/v1/tenants")[0]
	if v, _ := ls.tag("billing.read"); v != "reused" && v != "joined" {
		t.Errorf("list's billing.read = %v, want reused", v)
	}
	linked := false
	for _, r := range ls.References {
		if r.TraceID == scrape.TraceID && r.SpanID == read.SpanID {
			linked = true
		}
	}
	if !linked {
		t.Errorf("list span references %+v, want a link to the scrape's read %s/%s", ls.References, scrape.TraceID, read.SpanID)
	}
	if len(list.find("billing read")) != 0 {
		t.Error("the list request read the sources itself")
	}

	// No raw path, key or tenant id in any span name or attribute.
	for _, tr := range traces {
		for _, s := range tr.Spans {
			if strings.Contains(s.OperationName, secretTenant) {
				t.Errorf("span name %q holds the tenant id", s.OperationName)
			}
			for _, tag := range s.Tags {
				if v := fmt.Sprint(tag.Value); strings.Contains(v, secretTenant) || strings.Contains(v, "usage:") {
					t.Errorf("span %q attribute %s = %q holds a key or tenant id", s.OperationName, tag.Key, v)
				}
			}
		}
	}
}

// TestTracingOffByDefault: without an OTLP endpoint in the environment, or
// with tracing disabled by OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none,
// the exporter never connects to the collector it would otherwise use.
// With the endpoint set, the same scrape reaches it: the test can fail.
// OTEL_TRACES_EXPORTER=console writes the spans to standard output instead.
func TestTracingOffByDefault(t *testing.T) {
	redis := testserver.StartRedis(t)
	redis.HSet("usage:1:"+period.At(time.Now(), time.UTC).ID, "messages", 1)
	cases := []struct {
		name     string
		env      func(endpoint string) []string
		wantConn bool
		wantOut  string // on standard output, with tracing on but no connection
	}{
		{"no endpoint", func(string) []string {
			// Every other OTEL variable set, the endpoints unset.
			return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
				"OTEL_TRACES_SAMPLER=always_on", "OTEL_SERVICE_NAME=x", "OTEL_BSP_SCHEDULE_DELAY=10"}
		}, false, ""},
		{"SDK disabled", func(ep string) []string {
			return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_SDK_DISABLED=true", "OTEL_BSP_SCHEDULE_DELAY=10"}
		}, false, ""},
		{"exporter none", func(ep string) []string {
			return []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + ep + "/v1/traces", "OTEL_TRACES_EXPORTER=none", "OTEL_BSP_SCHEDULE_DELAY=10"}
		}, false, ""},
		{"endpoint set", func(ep string) []string {
			return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_SDK_DISABLED=", "OTEL_TRACES_EXPORTER=", "OTEL_BSP_SCHEDULE_DELAY=10"}
		}, true, ""},
		{"console", func(ep string) []string {
			return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_SDK_DISABLED=", "OTEL_TRACES_EXPORTER=console", "OTEL_BSP_SCHEDULE_DELAY=10"}
		}, false, `"Name":"GET /metrics"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A collector that counts connections and answers OTLP/HTTP
			// with an empty success.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var conns atomic.Int64
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "application/x-protobuf")
				}),
				ConnState: func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						conns.Add(1)
					}
				},
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })

			e := startExporter(t, c.env("http://"+ln.Addr().String()), "--redis.addr="+redis.Addr())
			e.scrape()
			get(t, e.URL+"/api/v1/tenants")
			if c.wantConn {
				deadline := time.Now().Add(20 * time.Second)
				for conns.Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if conns.Load() == 0 {
					t.Fatal("tracing on, but no span reached the collector in 20s")
				}
				return
			}
			// Graceful stop flushes whatever a tracer provider would
			// hold: with tracing off there is none, and no connection.
			stopGracefully(t, e)
			if n := conns.Load(); n != 0 {
				t.Errorf("%d connections to the OTLP endpoint with tracing off", n)
			}
			if c.wantOut != "" {
				if !strings.Contains(e.Output(), c.wantOut) || !strings.Contains(e.Output(), `exporter=console`) {
					t.Errorf("output does not hold %s and the console exporter's start line", c.wantOut)
				}
				return
			}
			if strings.Contains(e.Output(), "tracing on") {
				t.Error("the exporter logged that tracing is on")
			}
		})
	}
}
