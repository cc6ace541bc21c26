package conn

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// RoundTrips is the span of one kind of round trip on one connection
// (every SCAN page of a node read, say), with counts as attributes rather
// than a span per key.
type RoundTrips struct {
	Span        trace.Span
	Calls, Keys int
}

// StartRoundTrips starts the span of command's round trips on node
// (host:port in a cluster; "" for a single server). With tracing off it
// builds nothing.
func StartRoundTrips(ctx context.Context, command, node string) (context.Context, RoundTrips) {
	if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
		return ctx, RoundTrips{Span: parent}
	}
	ctx, span := tracing.Start(ctx, "redis "+command)
	span.SetAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", command))
	if node != "" {
		span.SetAttributes(attribute.String("server.address", node))
	}
	return ctx, RoundTrips{Span: span}
}

// End records the counts and err, and ends the span.
func (rt *RoundTrips) End(err error) {
	if rt.Span.IsRecording() {
		rt.Span.SetAttributes(attribute.Int("redis.round_trips", rt.Calls), attribute.Int("redis.keys", rt.Keys))
	}
	tracing.End(rt.Span, err)
}
