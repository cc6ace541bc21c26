package billing

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// countingUsage counts full reads.
type countingUsage struct {
	staticUsage
	reads atomic.Int32
}

func (c *countingUsage) ReadUsage(ctx context.Context, p usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	c.reads.Add(1)
	return c.staticUsage.ReadUsage(ctx, p, periodID)
}

// TestFreshnessRule: a scrape (Read) reads every time; the API (Recent)
// reuses a completed read, whoever made it, while it is young enough, and
// never with a max age of zero.
func TestFreshnessRule(t *testing.T) {
	cases := []struct {
		name   string
		maxAge time.Duration
		calls  []string // "read" or "recent", in order
		want   int32    // full reads made
	}{
		{"scrapes always read", time.Hour, []string{"read", "read", "read"}, 3},
		{"the API reuses a scrape's read", time.Hour, []string{"read", "recent", "recent"}, 1},
		{"a scrape never reuses the API's read", time.Hour, []string{"recent", "read"}, 2},
		{"max age zero: the API reads too", 0, []string{"read", "recent", "recent"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &countingUsage{staticUsage: *usageState()}
			svc := New(u, WithClock(func() time.Time { return now }), WithConfig(Config{Defaults: defaults}), WithMaxAge(tc.maxAge))
			for _, call := range tc.calls {
				var r *Read
				var err error
				if call == "read" {
					r, err = svc.Read(context.Background())
				} else {
					r, err = svc.Recent(context.Background())
				}
				if err != nil || !r.Report.UsageUp() || r.Info.Err != nil {
					t.Fatalf("%s: %v, usage up %v, info %v", call, err, r.Report.UsageUp(), r.Info.Err)
				}
			}
			if got := u.reads.Load(); got != tc.want {
				t.Errorf("%d full reads, want %d", got, tc.want)
			}
		})
	}
}

// TestFailedReadIsNotReusedLong: a read that failed (Redis down) is reused
// by Recent for at most a second, however long the max age.
func TestFailedReadIsNotReusedLong(t *testing.T) {
	u := &countingUsage{staticUsage: staticUsage{err: errors.New("redis down")}}
	svc := New(u, WithClock(func() time.Time { return now }), WithMaxAge(time.Hour))
	r, _ := svc.Read(context.Background())
	if r.Report.UsageUp() {
		t.Fatal("usage up with Redis down")
	}
	// Age the failed read past failedMaxAge without waiting for it.
	svc.lastRead.Load().completed = time.Now().Add(-failedMaxAge)
	if _, err := svc.Recent(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := u.reads.Load(); got != 2 {
		t.Errorf("%d full reads, want 2: a failed read older than %v was reused", got, failedMaxAge)
	}
}

// lendingUsage lends each snapshot's maps, as the track mode's mirror
// does, and counts the snapshots given back.
type lendingUsage struct {
	staticUsage
	lent, back atomic.Int32
}

func (l *lendingUsage) ReadUsage(ctx context.Context, p usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	snap, err := l.staticUsage.ReadUsage(ctx, p, periodID)
	if snap != nil {
		l.lent.Add(1)
		snap.Lend(func() { l.back.Add(1) })
	}
	return snap, err
}

// TestReadReleasesTheUsageMaps: once joined, every read gives its usage
// snapshot's maps back to the reader (which may then change them in
// place), and the report's tenants keep their counters.
func TestReadReleasesTheUsageMaps(t *testing.T) {
	u := &lendingUsage{staticUsage: *usageState()}
	svc := New(u, WithClock(func() time.Time { return now }), WithConfig(Config{Defaults: defaults}))
	for i := range 3 {
		r, err := svc.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.Report.Usage.Tenants != nil {
			t.Errorf("read %d: the report still holds the usage map after the join", i)
		}
		if r.Report.Tenants.Len() == 0 || r.Report.Tenants.At(0).Usage == nil {
			t.Fatalf("read %d: no tenant counters in the report", i)
		}
	}
	if lent, back := u.lent.Load(), u.back.Load(); lent != 3 || back != lent {
		t.Errorf("%d snapshots lent, %d given back", lent, back)
	}
}

// gatedCounting counts the full reads of a gatedUsage.
type gatedCounting struct {
	gatedUsage
	reads atomic.Int32
}

func (g *gatedCounting) ReadUsage(ctx context.Context, p usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	g.reads.Add(1)
	return g.gatedUsage.ReadUsage(ctx, p, periodID)
}

// TestScrapeArrivingDuringARead: a scrape arriving while another's read is
// in flight shares it, or with WithFreshReads (track mode) gets the next
// read, which sees the writes acknowledged before the scrape began.
func TestScrapeArrivingDuringARead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []Option
		reads int32
	}{
		{"shared", nil, 1},
		{"fresh reads", []Option{WithFreshReads()}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &gatedCounting{gatedUsage: gatedUsage{staticUsage: *usageState(), started: make(chan struct{}), release: make(chan struct{})}}
			svc := New(u, append(tc.opts, WithMaxReadTime(time.Minute))...)
			done := make(chan error, 2)
			scrape := func() { _, err := svc.Read(context.Background()); done <- err }
			go scrape()
			<-u.started
			go scrape()
			for svc.config().group.Waiters() < 2 {
				time.Sleep(time.Millisecond)
			}
			close(u.release)
			for range 2 {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if n := u.reads.Load(); n != tc.reads {
				t.Errorf("%d full reads, want %d", n, tc.reads)
			}
		})
	}
}
