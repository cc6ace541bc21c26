package mirror

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestMirrorTraceSpans: a track-mode read after the seed shows its Redis
// round trips as spans under the caller's, as a full read does: the
// barrier ("redis PING", two round trips) and the re-read batches ("redis
// HGETALL", one span per connection) with the keys re-read and the EXISTS
// among them as counts. With tracing off (no recording span) none is made.
func TestMirrorTraceSpans(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, _ := newMirror(t, srv.Addr()) // batches of 7
	c := srv.Conn()
	defer c.Close()
	for i := range 10 {
		if _, err := c.Do("HSET", fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", 1); err != nil {
			t.Fatal(err)
		}
	}
	readUsage(t, m, thisPeriod) // the seed: a full read, traced by the node reader

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	// 8 changed usage keys and 1 key of another period (an EXISTS).
	for i := range 8 {
		if _, err := c.Do("HINCRBY", fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Do("HSET", "usage:1:"+lastPeriod, "messages", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, scrape := tp.Tracer("test").Start(ctx, "scrape")
	snap, err := m.ReadUsage(ctx, pattern, thisPeriod)
	scrape.End()
	if err != nil {
		t.Fatal(err)
	}
	if got := value(snap.Counters("3"), "messages"); got != 2 {
		t.Fatalf("tenant 3 messages = %d, want 2", got)
	}

	var barriers, rereads, rereadKeys, rereadTrips, exists int64
	for _, s := range rec.Ended() {
		if s.Name() != "scrape" && s.Parent().SpanID() != scrape.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the scrape", s.Name())
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value
		}
		switch s.Name() {
		case "scrape":
		case "redis PING":
			barriers++
			if n := attrs["redis.round_trips"].AsInt64(); n != 2 {
				t.Errorf("barrier round trips = %d, want 2", n)
			}
		case "redis HGETALL":
			rereads++
			rereadKeys += attrs["redis.keys"].AsInt64()
			rereadTrips += attrs["redis.round_trips"].AsInt64()
			exists += attrs["redis.exists_keys"].AsInt64()
		default:
			t.Errorf("unexpected span %q", s.Name())
		}
	}
	if barriers != 1 {
		t.Errorf("barrier spans = %d, want 1", barriers)
	}
	if rereads < 1 || rereads > read.HashReaders {
		t.Errorf("re-read spans = %d, want 1 to %d", rereads, read.HashReaders)
	}
	if rereadKeys != 9 || exists != 1 || rereadTrips != 2 {
		t.Errorf("re-read keys = %d (EXISTS %d) in %d round trips, want 9 (EXISTS 1) in 2 batches of up to 7", rereadKeys, exists, rereadTrips)
	}

	// Tracing off: the same read makes no span.
	before := len(rec.Ended())
	if _, err := c.Do("HINCRBY", "usage:0:"+thisPeriod, "messages", 1); err != nil {
		t.Fatal(err)
	}
	readUsage(t, m, thisPeriod)
	if n := len(rec.Ended()); n != before {
		t.Errorf("%d spans with tracing off", n-before)
	}
}
