// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables, and holds the two helpers the instrumented
// packages share: Start, a child span only under a recording parent, and
// End, which records an error.
//
// Tracing is off unless the environment names an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Off,
// Setup creates no exporter (no goroutine, no connection), the HTTP
// handler is not wrapped, no span is ever started, and each instrumented
// step costs one context lookup (Start finds no recording parent).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is service.name when OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) does not set one.
const DefaultServiceName = "billing_exporter"

// instrumentation is the instrumentation scope of every span started here.
const instrumentation = "github.com/billing-exporter/billing_exporter"

// Enabled reports whether the environment (getenv, usually os.Getenv) turns
// tracing on: an OTLP endpoint is set, OTEL_SDK_DISABLED is not true, and
// OTEL_TRACES_EXPORTER, when set, is otlp.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return false // "none", or an exporter this program does not have
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// propagator reads (and, for any outgoing call, writes) W3C trace context
// and baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Tracing is the process's tracing: on (an exporter and a tracer provider)
// or off (nothing at all).
type Tracing struct {
	provider *sdktrace.TracerProvider // nil: off
}

// Setup turns tracing on when the environment asks for it (Enabled):
// OTLP over HTTP (otlptracehttp reads the endpoint, headers, timeout,
// compression and TLS settings from OTEL_EXPORTER_OTLP_*), the sampler from
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default
// parentbased_always_on), the resource from OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, and W3C trace context (traceparent) accepted
// from callers. Off, it returns a Tracing whose Handler and Shutdown do
// nothing. version is service.version.
func Setup(ctx context.Context, version string) (*Tracing, error) {
	if !Enabled(os.Getenv) {
		return &Tracing{}, nil
	}
	if p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p == "" {
		if p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported", p)
		}
	} else if p != "http/protobuf" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=%q: only http/protobuf is supported", p)
	}
	// New does not connect: the batch processor's goroutine sends the
	// first batch when there is one.
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Later options win: the environment overrides the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(DefaultServiceName), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	return &Tracing{provider: tp}, nil
}

// On reports whether tracing is on.
func (t *Tracing) On() bool { return t.provider != nil }

// Shutdown flushes the spans not yet sent and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// routeKey holds the route a handler names for its request (SetRoute).
type routeKey struct{}

// Handler traces every request served by mux: one server span per request,
// a child of the caller's span when the request carries a W3C traceparent.
// The span is named by method and route template: the mux pattern
// ("GET /metrics"), or the finer template a handler gives with SetRoute
// ("GET /api/v1/tenants/{tenant_id}/usage"); never by the raw path, which
// may hold a tenant id. Off, Handler returns mux itself.
func (t *Tracing) Handler(mux http.Handler) http.Handler {
	if t.provider == nil {
		return mux
	}
	traced := otelhttp.NewHandler(mux, "http",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(spanName),
		// The exporter's own requests are not traced: no scrape of a
		// health check should fill a trace store.
		otelhttp.WithFilter(func(r *http.Request) bool { return !strings.HasPrefix(r.URL.Path, "/-/") }),
		// Metrics are the exporter's own (billing_api_*), not OTLP.
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := new(string)
		traced.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
	})
}

// spanName is the request span's name: the method, then the route
// template once routing has found it.
func spanName(_ string, r *http.Request) string {
	if route, ok := r.Context().Value(routeKey{}).(*string); ok && *route != "" {
		return r.Method + " " + *route
	}
	if r.Pattern != "" {
		// Patterns are mounted without a method ("/metrics", "/api/").
		_, path, _ := strings.Cut(r.Pattern, " ")
		if path == "" {
			path = r.Pattern
		}
		return r.Method + " " + path
	}
	return r.Method
}

// SetRoute names the request's route template, for a handler that routes
// below its mux pattern (the API under /api/). It sets http.route on the
// request span, and url.path to the same template so that no tenant id in
// the path reaches a trace; with tracing off it does nothing.
func SetRoute(ctx context.Context, route string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if p, ok := ctx.Value(routeKey{}).(*string); ok {
		*p = route
	}
	// url.path (set by otelhttp from the raw path) would carry the tenant
	// id the route template leaves out: it gets the template too.
	span.SetAttributes(semconv.HTTPRoute(route), semconv.URLPath(route))
}

// Start starts a span named name as a child of ctx's span, only when that
// span is recording. Otherwise it returns ctx and its (non-recording) span
// unchanged: no span is created, nothing is allocated, so an instrumented
// step costs one context lookup with tracing off. Callers set attributes
// only when span.IsRecording(), and end the span with End.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(instrumentation).Start(ctx, name)
}

// End records err on span (status Error and an exception event) when it is
// not nil, and ends span. Ending the non-recording span Start returned with
// tracing off does nothing.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Link adds to ctx's span a link to other, with attrs: how a request that
// joined (or reused) a shared read points at the read's span. It does
// nothing when ctx's span is not recording or other is not valid.
func Link(ctx context.Context, other trace.SpanContext, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() || !other.IsValid() {
		return
	}
	span.AddLink(trace.Link{SpanContext: other, Attributes: attrs})
}
