package tracing

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestEnabled(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"sampler and name only", map[string]string{"OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "x"}, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{"SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{"exporter otlp", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "otlp"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := enabled(func(k string) string { return c.env[k] }); got != c.want {
				t.Errorf("Enabled = %v, want %v", got, c.want)
			}
		})
	}
}

// TestOff: with no OTLP endpoint, Setup starts nothing (no goroutine),
// Handler is the handler itself, and Start creates no span.
func TestOff(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	before := runtime.NumGoroutine()
	tr, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if tr.On() {
		t.Fatal("tracing on with no endpoint")
	}
	if n := runtime.NumGoroutine(); n != before {
		t.Errorf("goroutines %d → %d after Setup with tracing off", before, n)
	}
	mux := http.NewServeMux()
	if got, ok := tr.Handler(mux).(*http.ServeMux); !ok || got != mux {
		t.Errorf("Handler wrapped the mux with tracing off: %T", tr.Handler(mux))
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := Start(ctx, "x")
		End(span, nil)
		if c != ctx || span.IsRecording() {
			t.Fatal("Start created a span with tracing off")
		}
	})
	if allocs != 0 {
		t.Errorf("Start/End with tracing off allocate %v times", allocs)
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// TestHandlerSpanNames: the request span is named by method and route
// template (the mux pattern, or SetRoute's finer one), never the raw path,
// and continues the caller's W3C trace.
func TestHandlerSpanNames(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := &Tracing{provider: tp}

	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		_, span := Start(r.Context(), "child")
		End(span, nil)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		SetRoute(r.Context(), "/api/v1/tenants/{tenant_id}/usage")
	})
	mux.HandleFunc("/-/healthy", func(http.ResponseWriter, *http.Request) {})
	h := tr.Handler(mux)
	const parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

	for _, c := range []struct{ path, traceparent string }{
		{"/metrics", ""},
		{"/api/v1/tenants/secret-tenant/usage", "00-" + parentTrace + "-00f067aa0ba902b7-01"},
		{"/nowhere/secret-tenant", ""},
		{"/-/healthy", ""},
	} {
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		if c.traceparent != "" {
			req.Header.Set("traceparent", c.traceparent)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	names := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		names[s.Name()] = s
	}
	for _, want := range []string{"GET /metrics", "child", "GET /api/v1/tenants/{tenant_id}/usage", "GET"} {
		if names[want] == nil {
			t.Errorf("no span %q; have %v", want, keys(names))
		}
	}
	if len(names) != 4 {
		t.Errorf("spans %v, want 4 (none for /-/healthy, none named by a raw path)", keys(names))
	}
	if s := names["child"]; s != nil && s.Parent().SpanID() != names["GET /metrics"].SpanContext().SpanID() {
		t.Error("child span is not the request span's child")
	}
	if s := names["GET /api/v1/tenants/{tenant_id}/usage"]; s != nil {
		if got := s.SpanContext().TraceID().String(); got != parentTrace {
			t.Errorf("API span trace %s, want the caller's %s", got, parentTrace)
		}
		if !s.Parent().IsRemote() {
			t.Error("API span's parent is not the caller's remote span")
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestShutdownGivesUp: a collector that accepts connections and never
// answers does not hold Shutdown up.
func TestShutdownGivesUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60000")
	tr, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.provider.Tracer("test").Start(context.Background(), "pending")
	span.End()
	done := make(chan error, 1)
	go func() { done <- tr.Shutdown(context.Background()) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown still waiting for a collector that never answers")
	}
}
