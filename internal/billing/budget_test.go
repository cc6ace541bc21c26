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

// TestPlansBudget: the plans query of a read gets plansBudget of the time
// left to the caller it runs for, bounded by the read's cap, so that a slow
// source fails in time for that caller to get Redis' numbers. A patient
// scrape arriving while an impatient one's read runs gets a read of its own
// (sharedread's join rule), and with it the plans.
func TestPlansBudget(t *testing.T) {
	newSvc := func(p plans.Source, maxRead time.Duration) *Service {
		return New(usageState(), WithClock(func() time.Time { return now }), WithMaxReadTime(maxRead),
			WithConfig(Config{Plans: p, PlansName: "postgres", Defaults: defaults}))
	}
	t.Run("a patient scrape after an impatient one", func(t *testing.T) {
		p := &blockingPlans{started: make(chan struct{}, 2), release: make(chan struct{})}
		svc := newSvc(p, time.Minute)
		first, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		firstDone := make(chan *Read, 1)
		go func() { r, _ := svc.Read(first); firstDone <- r }()
		<-p.started
		second, cancel2 := context.WithTimeout(context.Background(), time.Minute)
		defer cancel2()
		got := make(chan *Read, 1)
		go func() { r, _ := svc.Read(second); got <- r }()
		<-p.started // its own read
		if r := <-firstDone; r.Report.Plans.Up || !r.Report.UsageUp() {
			t.Fatalf("impatient scrape: plans up %v, usage up %v; want the plans cut by its budget, usage read",
				r.Report.Plans.Up, r.Report.UsageUp())
		}
		close(p.release)
		r := <-got
		if !r.Report.Plans.Up || r.Report.Plans.Err != nil {
			t.Fatalf("patient scrape: plans up %v, err %v; want read", r.Report.Plans.Up, r.Report.Plans.Err)
		}
	})
	for name, tc := range map[string]struct {
		timeout, maxRead time.Duration // 0: none
	}{
		"the caller's deadline": {timeout: 2 * time.Second},
		"the read's cap":        {maxRead: 500 * time.Millisecond},
	} {
		t.Run("the budget runs out: "+name, func(t *testing.T) {
			p := &blockingPlans{started: make(chan struct{}, 1), release: make(chan struct{})}
			svc := newSvc(p, tc.maxRead)
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			r, err := svc.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v (the plans budget should end before the caller's deadline)", err)
			}
			if r.Report.Plans.Up || !errors.Is(r.Report.Plans.Err, context.DeadlineExceeded) {
				t.Fatalf("plans up %v, err %v; want DeadlineExceeded", r.Report.Plans.Up, r.Report.Plans.Err)
			}
		})
	}
}
