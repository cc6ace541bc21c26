package billing

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// The freshness rule, the one place that decides when Redis is read in
// full (a SCAN of the whole keyspace):
//
//   - A read in flight is shared by every caller that arrives while it
//     runs, scrapes and API requests alike (sharedread): a scrape and a
//     list request issued together cost Redis one read. In track mode only
//     until the mirror takes its view of Redis (it seals the read before
//     its barrier): a caller arriving later gets the next read, so that a
//     write acknowledged before a scrape began is in that scrape. It runs until the
//     latest deadline among its waiters (each capped by its handler:
//     --scrape.max-timeout for scrapes), so a client with a tiny timeout
//     cannot make the read that others wait for fail.
//   - A scrape (Read) never gets a completed read: each scrape reports
//     Redis as of that scrape, as Prometheus expects of an exporter.
//   - The API's full-state endpoints (Recent) also take the last completed
//     read, whoever started it, while it is younger than the max age
//     (WithMaxAge, default DefaultMaxAge); a failed read (Redis down) only
//     for failedMaxAge, so that recovery shows at once. A burst of API
//     requests between scrapes therefore costs at most one read per max age.
//   - A read cut short because every caller left is never kept: its failure
//     says nothing about Redis.

// DefaultMaxAge is how long Recent reuses a completed read.
const DefaultMaxAge = 15 * time.Second

// failedMaxAge bounds how long a read that failed is reused by Recent:
// long enough that a burst of requests during an outage is one connection
// attempt, short enough that recovery shows at once.
const failedMaxAge = time.Second

// Read is one full read of every source: the joined Report and Redis INFO.
// It is shared: callers must not modify it.
type Read struct {
	Report   *Report
	Info     Info
	Duration time.Duration // the whole read, INFO and plans included

	// completed is when the read ended, by this process's clock (the
	// report's own At follows the service's clock, which tests may fix).
	completed time.Time
	// gen is the Config the read was made under: Recent reuses no read
	// made before a reload.
	gen *generation
	// span is the read's span and starter the span of the caller that
	// started it (both invalid with tracing off): a caller that joined the
	// read, or reused it, links its own span to span.
	span, starter trace.SpanContext
}

// Age is how long ago the read completed.
func (r *Read) Age() time.Duration { return time.Since(r.completed) }

// reads is the last completed read (the shared read in flight is the
// generation's).
type reads struct {
	maxAge time.Duration

	mu   sync.Mutex
	last *Read
}

// Read returns the read in flight, or a new one: what a scrape reports.
// The error is only ever ctx's (a failed source is described in the Read).
// When ctx ends before the read does (the scrape was cut by its deadline),
// Read returns that error with a Read of the sources' health as last
// known, never nil: no usage and no INFO, the plans as the last read of
// them left them, and the current period.
func (s *Service) Read(ctx context.Context) (*Read, error) {
	g := s.config()
	since := time.Now()
	r, err := g.group.Do(ctx, func(ctx context.Context) (*Read, error) { return s.read(ctx, g) })
	noteRead(ctx, r, since)
	if err != nil {
		return s.unread(g, err), err
	}
	return r, nil
}

// Recent returns the last completed read while it is young enough (see the
// freshness rule above), else the read in flight or a new one: what the
// API's list and plans endpoints answer from.
func (s *Service) Recent(ctx context.Context) (*Read, error) {
	g := s.config()
	since := time.Now()
	if r := s.fresh(g); r != nil {
		noteRead(ctx, r, since)
		return r, nil
	}
	r, err := g.group.Do(ctx, func(ctx context.Context) (*Read, error) {
		// A caller that found no fresh read may arrive just after another
		// read completed: reuse that one rather than reading again.
		if r := s.fresh(g); r != nil {
			return r, nil
		}
		return s.read(ctx, g)
	})
	noteRead(ctx, r, since)
	return r, err
}

// noteRead says on the caller's span (ctx's) how it got r: it "started"
// the read, or it "joined" a read in flight that another request started,
// or it "reused" one completed before it asked (since). A caller that did
// not start the read links to the read's span, which lives in the trace of
// the request that started it: in Jaeger, the request shows a reference to
// the read it waited for.
func noteRead(ctx context.Context, r *Read, since time.Time) {
	caller := trace.SpanFromContext(ctx)
	if r == nil || !caller.IsRecording() {
		return
	}
	how := "joined"
	switch {
	case r.starter.Equal(caller.SpanContext()):
		caller.SetAttributes(attribute.String("billing.read", "started"))
		return
	case r.completed.Before(since):
		how = "reused"
	}
	caller.SetAttributes(attribute.String("billing.read", how))
	tracing.Link(ctx, r.span, attribute.String("billing.read", how))
}

// fresh returns the last completed read if Recent may reuse it under g.
func (s *Service) fresh(g *generation) *Read {
	s.reads.mu.Lock()
	r := s.reads.last
	s.reads.mu.Unlock()
	if r == nil || r.gen != g {
		return nil
	}
	maxAge := s.reads.maxAge
	if !r.Report.UsageUp() {
		maxAge = min(maxAge, failedMaxAge)
	}
	if r.Age() < maxAge {
		return r
	}
	return nil
}

// read reads INFO, usage and plans concurrently.
func (s *Service) read(ctx context.Context, g *generation) (*Read, error) {
	starter := trace.SpanContextFromContext(ctx)
	ctx, span := tracing.Start(ctx, "billing read")
	start := time.Now()
	r := &Read{gen: g, span: span.SpanContext(), starter: starter}
	defer func() {
		if !span.IsRecording() {
			return
		}
		span.SetAttributes(
			attribute.Int("billing.tenants", len(r.Report.Tenants)),
			attribute.Bool("billing.usage_up", r.Report.UsageUp()),
			attribute.Bool("billing.plans_stale", r.Report.Plans.Stale()),
		)
		// A failed source is part of the Report, not an error of Read, but
		// it is what an operator looks for on the span.
		tracing.End(span, errors.Join(r.Report.UsageErr, r.Info.Err, r.Report.Plans.Err))
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Info = s.store.Info(ctx)
	}()
	r.Report = s.report(ctx, g)
	<-done
	r.completed = time.Now()
	r.Duration = r.completed.Sub(start)
	if ctx.Err() == nil {
		// A read cut short by its callers says nothing about Redis.
		s.usageLog.observe(r.Report.UsageErr)
		s.infoLog.observe(r.Info.Err)
		s.reads.mu.Lock()
		s.reads.last = r
		s.reads.mu.Unlock()
	}
	return r, nil
}
