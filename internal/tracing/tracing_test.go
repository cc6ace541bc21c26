package tracing

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// receiver is an OTLP trace collector on loopback, over gRPC and over
// HTTP, that keeps the names of the spans it receives by protocol.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	grpcURL, httpURL string
	mu               sync.Mutex
	spans            map[string][]string
}

func (r *receiver) add(protocol string, req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans[protocol] = append(r.spans[protocol], s.GetName())
			}
		}
	}
}

func (r *receiver) received() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.spans)
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add("grpc", req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{spans: map[string][]string{}}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, r)
	go func() { _ = gs.Serve(gln) }()
	t.Cleanup(gs.Stop)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if req.URL.Path != "/v1/traces" || err != nil {
			http.Error(w, fmt.Sprintf("%s: %v", req.URL.Path, err), http.StatusBadRequest)
			return
		}
		r.add("http/protobuf", &msg)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(hs.Close)
	r.grpcURL, r.httpURL = "http://"+gln.Addr().String(), hs.URL
	return r
}

// childEnv makes TestConsoleChild, run in a child process, send one span
// named by its value and stop.
const childEnv = "TRACING_TEST_CONSOLE_SPAN"

// TestConsoleChild is the child process of the console case, whose
// exporter writes to the process's standard output.
func TestConsoleChild(t *testing.T) {
	span := os.Getenv(childEnv)
	if span == "" {
		t.Skip("run by TestExporterSelection")
	}
	tr, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, s := tr.provider.Tracer("test").Start(context.Background(), span)
	s.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// consoleOutput runs TestConsoleChild with the environment as it is and
// returns its standard output.
func consoleOutput(t *testing.T, span string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestConsoleChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+span)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s%s", err, out, stderr.String())
	}
	return string(out)
}

// otelVars are the variables the cases set; each case clears the rest.
var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
}

// TestExporterSelection: OTEL_* picks the span exporter as the OpenTelemetry
// specification says, each one on delivers a span where it says, tracing
// stays off until asked for, and an unknown value is an error naming its variable.
func TestExporterSelection(t *testing.T) {
	r := startReceiver(t)
	cases := []struct {
		name    string
		env     map[string]string
		want    string // Exporter(); "" is off
		deliver string // where the span must arrive: a protocol, or "stdout"
		wantErr string // the error must contain it
	}{
		{name: "nothing set", env: nil},
		{name: "sampler and service name only", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "x"}},
		{name: "endpoint: OTLP over HTTP", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL},
			want: "otlp (http/protobuf)", deliver: "http/protobuf"},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": r.httpURL + "/v1/traces"},
			want: "otlp (http/protobuf)", deliver: "http/protobuf"},
		{name: "http/protobuf named", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_EXPORTER": "otlp"},
			want: "otlp (http/protobuf)", deliver: "http/protobuf"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.grpcURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			want: "otlp (grpc)", deliver: "grpc"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": r.grpcURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			want: "otlp (grpc)", deliver: "grpc"},
		{name: "otlp named, default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			want: "otlp (http/protobuf)"},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"},
			want: "console", deliver: "stdout"},
		{name: "none with an endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL, "OTEL_TRACES_EXPORTER": "none"}},
		{name: "SDK disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL, "OTEL_SDK_DISABLED": "TRUE"}},
		{name: "SDK disabled wins over a bad exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "bogus", "OTEL_SDK_DISABLED": "true"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"},
			wantErr: `OTEL_TRACES_EXPORTER="jaeger": want one of otlp, console, none`},
		{name: "exporter list", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"},
			wantErr: `OTEL_TRACES_EXPORTER="otlp,console"`},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL="http/json": want one of grpc, http/protobuf`},
		{name: "unknown traces protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"},
			wantErr: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="udp"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range otelVars {
				t.Setenv(k, c.env[k])
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			checkErr := CheckEnv()
			tr, err := Setup(context.Background(), "test")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Setup error %v, want one containing %q", err, c.wantErr)
				}
				if checkErr == nil || checkErr.Error() != err.Error() {
					t.Errorf("CheckEnv = %v, want Setup's error %v", checkErr, err)
				}
				return
			}
			if err != nil || checkErr != nil {
				t.Fatalf("Setup: %v; CheckEnv: %v", err, checkErr)
			}
			if tr.Exporter() != c.want || tr.On() != (c.want != "") {
				t.Fatalf("exporter %q (on %v), want %q", tr.Exporter(), tr.On(), c.want)
			}
			if !tr.On() {
				return
			}
			span := "probe " + c.name
			if c.deliver == "stdout" {
				if err := tr.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
				if out := consoleOutput(t, span); !strings.Contains(out, `"Name":"`+span+`"`) {
					t.Errorf("standard output does not hold span %q:\n%s", span, out)
				}
				return
			}
			if c.deliver == "" {
				// No collector on the default endpoint: nothing to send.
				if err := tr.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
				return
			}
			_, s := tr.provider.Tracer("test").Start(context.Background(), span)
			s.End()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := tr.provider.ForceFlush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			if got := r.received()[c.deliver]; !slices.Contains(got, span) {
				t.Errorf("spans received over %s: %q, want %q (all: %v)", c.deliver, got, span, r.received())
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
