package billing

import (
	"context"
	"sync"
	"time"
)

// plansBudget is the share of the time left before a Report's deadline
// that the plans read may take. A plans source slower than the deadline (a
// lock on the tenants table, a query stuck behind a vacuum) must fail in
// time for the Report to be finished and returned, with the last plans
// kept and flagged stale, before the caller's deadline: reading it until
// the very deadline made the caller give up on the whole Report, Redis'
// good numbers included.
const plansBudget = 0.8

// plansContext bounds ctx by plansBudget of the time from now to ctx's
// deadline, re-reading that deadline when the budget runs out: the read a
// scrape shares with others runs until the latest deadline of the scrapes
// waiting for it (internal/sharedread), so when a patient scrape joins a
// read an impatient client started, the plans query in flight gets the
// patient budget too rather than failing at the impatient one's (which
// would report PostgreSQL down to the patient scrape). Without a deadline
// it is ctx.
func plansContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); !ok {
		return ctx, func() {}
	}
	c := &budgetContext{Context: ctx, start: time.Now(), done: make(chan struct{}), stop: make(chan struct{})}
	go c.watch()
	return c, func() {
		c.end(context.Canceled)
		c.stopOnce.Do(func() { close(c.stop) })
	}
}

// budgetContext is plansContext's context: the parent's values, a
// deadline at plansBudget of the parent's deadline as it stands, and an
// end of its own (DeadlineExceeded at that deadline, the parent's error
// when the parent ends first, Canceled when cancelled).
type budgetContext struct {
	context.Context
	start time.Time

	mu       sync.Mutex
	err      error
	done     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

func (c *budgetContext) Deadline() (time.Time, bool) {
	dl, ok := c.Context.Deadline()
	if !ok {
		return dl, false
	}
	return c.start.Add(time.Duration(float64(dl.Sub(c.start)) * plansBudget)), true
}

func (c *budgetContext) Done() <-chan struct{} { return c.done }

func (c *budgetContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *budgetContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// watch ends the context when its budget has run out (and has not moved
// later meanwhile) or its parent has ended.
func (c *budgetContext) watch() {
	for {
		var expired <-chan time.Time
		var timer *time.Timer
		if dl, ok := c.Deadline(); ok {
			timer = time.NewTimer(time.Until(dl))
			expired = timer.C
		}
		select {
		case <-c.stop:
		case <-c.Context.Done():
			c.end(c.Context.Err())
		case <-expired:
			if dl, ok := c.Deadline(); !ok || time.Now().Before(dl) {
				continue // the parent's deadline moved later (the timer has fired)
			}
			c.end(context.DeadlineExceeded)
		}
		if timer != nil {
			timer.Stop()
		}
		return
	}
}
