// Package tracing sets up OpenTelemetry tracing from OTEL_* variables.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const serviceName = "billing_exporter"

const instrumentation = "github.com/billing-exporter/billing_exporter"

// exporters are the OTEL_TRACES_EXPORTER values the exporter accepts.
var exporters = []string{"otlp", "console", "none"}

// protocols are the OTLP protocols the exporter speaks.
var protocols = []string{"grpc", "http/protobuf"}

// exporterName returns the span exporter OTEL_* asks for, or "" when tracing
// is off: OTLP is the default exporter, but only once an OTLP endpoint is
// set, so that an unset environment starts nothing.
func exporterName(getenv func(string) string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return "", nil
	}
	name := getenv("OTEL_TRACES_EXPORTER")
	switch {
	case name == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "":
		return "", nil
	case name == "":
		name = "otlp"
	case !slices.Contains(exporters, name):
		return "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want one of %s", name, strings.Join(exporters, ", "))
	case name == "none":
		return "", nil
	}
	if name == "otlp" {
		key, proto := protocolVar(getenv)
		if proto != "" && !slices.Contains(protocols, proto) {
			return "", fmt.Errorf("%s=%q: want one of %s", key, proto, strings.Join(protocols, ", "))
		}
	}
	return name, nil
}

// protocolVar returns the variable that sets the OTLP protocol of traces,
// and its value.
func protocolVar(getenv func(string) string) (key, value string) {
	key = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if getenv(key) == "" {
		key = "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	return key, getenv(key)
}

// CheckEnv refuses an OTEL_TRACES_EXPORTER or OTLP protocol that Setup
// would refuse, so that a start fails before anything else starts.
func CheckEnv() error {
	_, err := exporterName(os.Getenv)
	return err
}

var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Tracing is on or off.
type Tracing struct {
	provider *sdktrace.TracerProvider
	exporter string
}

// Setup turns tracing on when the OTEL_* environment asks for it (an OTLP
// endpoint, or OTEL_TRACES_EXPORTER otlp or console); an exporter or
// protocol it does not know is an error.
func Setup(ctx context.Context, version string) (*Tracing, error) {
	name, err := exporterName(os.Getenv)
	if err != nil || name == "" {
		return &Tracing{}, err
	}
	// Unset, OTEL_TRACES_EXPORTER means OTLP to autoexport too.
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s trace exporter: %w", name, err)
	}
	if name == "otlp" {
		_, proto := protocolVar(os.Getenv)
		if proto == "" {
			proto = "http/protobuf"
		}
		name = "otlp (" + proto + ")"
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	return &Tracing{provider: tp, exporter: name}, nil
}

// Exporter names the span exporter in use, e.g. "otlp (grpc)"; "" when off.
func (t *Tracing) Exporter() string { return t.exporter }

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
