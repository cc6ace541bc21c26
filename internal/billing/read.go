package billing

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// DefaultMaxAge is the default WithMaxAge.
const DefaultMaxAge = 15 * time.Second

const failedMaxAge = time.Second

// Read is one full read, shared: read only.
type Read struct {
	Report   *Report
	Info     Info
	Duration time.Duration

	completed     time.Time // not the Service's clock
	gen           *generation
	span, starter trace.SpanContext
}

// Age is the read's age.
func (r *Read) Age() time.Duration { return time.Since(r.completed) }

// Read returns a new shared read; on ctx's error, one without usage.
func (s *Service) Read(ctx context.Context) (*Read, error) {
	g := s.config()
	since := time.Now()
	due, _ := ctx.Deadline()
	r, err := g.group.Do(ctx, func(rctx context.Context) (*Read, error) { return s.read(rctx, g, due) })
	noteRead(ctx, r, since)
	if err != nil {
		return s.unread(g, err), err
	}
	return r, nil
}

// Recent reuses a young enough read, else shares one.
func (s *Service) Recent(ctx context.Context) (*Read, error) {
	g := s.config()
	since := time.Now()
	due, _ := ctx.Deadline()
	if r := s.fresh(g); r != nil {
		noteRead(ctx, r, since)
		return r, nil
	}
	r, err := g.group.Do(ctx, func(rctx context.Context) (*Read, error) {
		if r := s.fresh(g); r != nil {
			return r, nil
		}
		return s.read(rctx, g, due)
	})
	noteRead(ctx, r, since)
	return r, err
}

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

func (s *Service) fresh(g *generation) *Read {
	r := s.lastRead.Load()
	if r == nil || r.gen != g {
		return nil
	}
	maxAge := s.maxAge
	if !r.Report.UsageUp() {
		maxAge = min(maxAge, failedMaxAge)
	}
	if r.Age() < maxAge {
		return r
	}
	return nil
}

func (s *Service) read(ctx context.Context, g *generation, due time.Time) (*Read, error) {
	starter := trace.SpanContextFromContext(ctx)
	ctx, span := tracing.Start(ctx, "billing read")
	start := time.Now()
	r := &Read{gen: g, span: span.SpanContext(), starter: starter}
	defer func() {
		span.SetAttributes(
			attribute.Int("billing.tenants", r.Report.Tenants.Len()),
			attribute.Bool("billing.usage_up", r.Report.UsageUp()),
			attribute.Bool("billing.plans_stale", r.Report.Plans.Stale()),
		)
		tracing.End(span, errors.Join(r.Report.UsageErr, r.Info.Err, r.Report.Plans.Err))
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Info = s.store.Info(ctx)
	}()
	r.Report = s.report(ctx, g, due)
	<-done
	r.completed = time.Now()
	r.Duration = r.completed.Sub(start)
	if ctx.Err() == nil { // a read every caller left is not kept
		s.usageLog.observe(r.Report.UsageErr)
		s.infoLog.observe(r.Info.Err)
		s.lastRead.Store(r)
	}
	return r, nil
}
