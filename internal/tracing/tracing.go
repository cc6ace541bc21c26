// Package tracing sets up OpenTelemetry tracing from OTEL_* variables.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

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

const serviceName = "billing_exporter"

const instrumentation = "github.com/billing-exporter/billing_exporter"

func enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Tracing is on or off.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// Setup turns OTLP/HTTP tracing on if asked.
func Setup(ctx context.Context, version string) (*Tracing, error) {
	if !enabled(os.Getenv) {
		return &Tracing{}, nil
	}
	protocol := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if os.Getenv(protocol) == "" {
		protocol = "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	if p := os.Getenv(protocol); p != "" && p != "http/protobuf" {
		return nil, fmt.Errorf("%s=%q: only http/protobuf is supported", protocol, p)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version)),
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

// Shutdown flushes spans, giving up after a second.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return t.provider.Shutdown(ctx)
}

type routeKey struct{}

// Handler traces requests by route, not path.
func (t *Tracing) Handler(mux http.Handler) http.Handler {
	if t.provider == nil {
		return mux
	}
	traced := otelhttp.NewHandler(mux, "http",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(spanName),
		// Health checks would fill the trace store.
		otelhttp.WithFilter(func(r *http.Request) bool { return !strings.HasPrefix(r.URL.Path, "/-/") }),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traced.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, new(string))))
	})
}

func spanName(_ string, r *http.Request) string {
	if route, ok := r.Context().Value(routeKey{}).(*string); ok && *route != "" {
		return r.Method + " " + *route
	}
	if r.Pattern != "" { // without the pattern's method
		return r.Method + " " + r.Pattern[strings.IndexByte(r.Pattern, ' ')+1:]
	}
	return r.Method
}

// SetRoute names a route below the mux pattern.
func SetRoute(ctx context.Context, route string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if p, ok := ctx.Value(routeKey{}).(*string); ok {
		*p = route
	}
	// url.path would otherwise carry the tenant id.
	span.SetAttributes(semconv.HTTPRoute(route), semconv.URLPath(route))
}

// Start starts a span under a recording parent.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(instrumentation).Start(ctx, name)
}

// End records err and ends span.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Link links ctx's span to other.
func Link(ctx context.Context, other trace.SpanContext, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() || !other.IsValid() {
		return
	}
	span.AddLink(trace.Link{SpanContext: other, Attributes: attrs})
}
