package billing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/plans"
)

// blockingPlans answers Load when released, or fails when its context
// ends first; started says a Load is under way.
type blockingPlans struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingPlans) Load(ctx context.Context) (*plans.Catalog, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		return catalog(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestPlansQueryFollowsTheSharedDeadline: a scrape with a 200 ms deadline
// starts a read whose plans query is slow; a scrape with a minute joins
// it. The query is answered only after the first scrape has given up: the
// joined scrape gets the plans, read (PostgreSQL up), not a query cut at
// the first scrape's budget.
//
// And a query slower than the whole budget still ends with
// DeadlineExceeded (not as if abandoned), so the source is reported down.
func TestPlansQueryFollowsTheSharedDeadline(t *testing.T) {
	t.Run("a patient scrape joins", func(t *testing.T) {
		p := &blockingPlans{started: make(chan struct{}, 1), release: make(chan struct{})}
		svc := newService(usageState(), p)
		first, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		firstDone := make(chan error, 1)
		go func() { _, err := svc.Read(first); firstDone <- err }()
		<-p.started
		second, cancel2 := context.WithTimeout(context.Background(), time.Minute)
		defer cancel2()
		got := make(chan *Read, 1)
		go func() { r, _ := svc.Read(second); got <- r }()
		for svc.config().group.Waiters() < 2 {
			time.Sleep(time.Millisecond)
		}
		if err := <-firstDone; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first scrape: %v, want its deadline (a read that ended first cut the plans query at the first scrape's budget)", err)
		}
		close(p.release)
		r := <-got
		if !r.Report.Plans.Up || r.Report.Plans.Err != nil {
			t.Fatalf("joined scrape: plans up %v, err %v; want read", r.Report.Plans.Up, r.Report.Plans.Err)
		}
	})
	t.Run("the budget runs out", func(t *testing.T) {
		p := &blockingPlans{started: make(chan struct{}, 1), release: make(chan struct{})}
		svc := newService(usageState(), p)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := svc.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (the plans budget should end before the caller's deadline)", err)
		}
		if r.Report.Plans.Up || !errors.Is(r.Report.Plans.Err, context.DeadlineExceeded) {
			t.Fatalf("plans up %v, err %v; want DeadlineExceeded", r.Report.Plans.Up, r.Report.Plans.Err)
		}
	})
}
