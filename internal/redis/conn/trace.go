package conn

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// RoundTrips is the span of one command's round trips, with counts.
type RoundTrips struct {
	Span        trace.Span
	Calls, Keys int
}

// StartRoundTrips starts command's span on node.
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

// End records the counts and err.
func (rt *RoundTrips) End(err error) {
	rt.Span.SetAttributes(attribute.Int("redis.round_trips", rt.Calls), attribute.Int("redis.keys", rt.Keys))
	tracing.End(rt.Span, err)
}
