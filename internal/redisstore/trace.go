package redisstore

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// roundTrips is the span of one kind of Redis round trip within a read
// (every SCAN page of a node, every HGETALL batch of a hash reader, an
// INFO): one span per kind and connection, with the counts as attributes,
// never a span per key or a list of keys. Every read mode calls it the same
// way:
//
//	ctx, rt := startRoundTrips(ctx, "SCAN", n.node)
//	defer func() { rt.end(err) }() // err: the named result
//	… rt.calls++; rt.keys += len(page) …
//
// With tracing off it costs a context lookup (tracing.Start).
type roundTrips struct {
	span        trace.Span
	calls, keys int
}

// startRoundTrips starts the span of command's round trips on node
// (host:port in a cluster; "" for a single server).
func startRoundTrips(ctx context.Context, command, node string) (context.Context, roundTrips) {
	if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
		// Tracing off: not even the span name is built.
		return ctx, roundTrips{span: parent}
	}
	ctx, span := tracing.Start(ctx, "redis "+command)
	span.SetAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", command))
	if node != "" {
		span.SetAttributes(attribute.String("server.address", node))
	}
	return ctx, roundTrips{span: span}
}

// end records the counts and err, and ends the span.
func (rt *roundTrips) end(err error) {
	if rt.span.IsRecording() {
		rt.span.SetAttributes(attribute.Int("redis.round_trips", rt.calls), attribute.Int("redis.keys", rt.keys))
	}
	tracing.End(rt.span, err)
}
