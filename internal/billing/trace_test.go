package billing

import (
	"context"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// fixedPlans is a plans source that always returns cat.
type fixedPlans struct{ cat *plans.Catalog }

func (f fixedPlans) Load(context.Context) (*plans.Catalog, error) { return f.cat, nil }

// gatedUsage holds every ReadUsage until release is closed.
type gatedUsage struct {
	staticUsage
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gatedUsage) ReadUsage(ctx context.Context, p usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	g.once.Do(func() { close(g.started) })
	<-g.release
	return g.staticUsage.ReadUsage(ctx, p, periodID)
}

// TestReadSpans: the read is one span under the request that started it,
// with the plans load and the join as children; a request that joined the
// read in flight, or reused a completed one, says so and links to it.
func TestReadSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")

	u := &gatedUsage{staticUsage: *usageState(), started: make(chan struct{}), release: make(chan struct{})}
	svc := New(u, WithClock(func() time.Time { return now }), WithMaxAge(time.Hour),
		WithConfig(Config{Plans: fixedPlans{cat: catalog()}, PlansName: "file", Defaults: defaults}))

	request := func(name string, call func(context.Context) (*Read, error)) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, span := tracer.Start(context.Background(), name)
			if _, err := call(ctx); err != nil {
				t.Error(err)
			}
			span.End()
		}()
		return done
	}
	first := request("first", svc.Read)
	<-u.started
	second := request("second", svc.Read)
	// The second caller must be waiting on the read before it is released:
	// poll the shared read's waiters, not the clock.
	for !joined(svc) {
		time.Sleep(time.Millisecond)
	}
	close(u.release)
	<-first
	<-second
	<-request("third", svc.Recent)

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = s
	}
	read := spans["billing read"]
	if read == nil {
		t.Fatalf("no billing read span; have %d spans", len(spans))
	}
	if read.Parent().SpanID() != spans["first"].SpanContext().SpanID() {
		t.Error("billing read is not the first request's child")
	}
	for _, name := range []string{"plans load", "billing join"} {
		if s := spans[name]; s == nil || s.Parent().SpanID() != read.SpanContext().SpanID() {
			t.Errorf("%s is not a child of billing read", name)
		}
	}
	for name, want := range map[string]string{"first": "started", "second": "joined", "third": "reused"} {
		s := spans[name]
		var how string
		for _, a := range s.Attributes() {
			if a.Key == "billing.read" {
				how = a.Value.AsString()
			}
		}
		if how != want {
			t.Errorf("%s: billing.read = %q, want %q", name, how, want)
		}
		links := s.Links()
		if want == "started" {
			if len(links) != 0 {
				t.Errorf("%s: %d links, want none", name, len(links))
			}
			continue
		}
		if len(links) != 1 || !links[0].SpanContext.Equal(read.SpanContext()) {
			t.Errorf("%s: links %v, want one to the read", name, links)
		}
	}
}

// joined reports whether a second caller waits on the read in flight.
func joined(s *Service) bool {
	return s.config().group.Waiters() >= 2
}
