package sharedread

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a read that counts its runs and returns its run number once
// released, or the error of its context when that ends first.
type gate struct {
	runs    atomic.Int32
	started chan int32 // each run's number, as it starts
	release chan struct{}
	ctxs    chan context.Context // each run's context, as it starts
}

func newGate() *gate {
	return &gate{started: make(chan int32, 16), release: make(chan struct{}), ctxs: make(chan context.Context, 16)}
}

func (g *gate) read(ctx context.Context) (int32, error) {
	n := g.runs.Add(1)
	g.ctxs <- ctx
	g.started <- n
	select {
	case <-g.release:
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

type result struct {
	v   int32
	err error
}

func goDo(ctx context.Context, g *Group[int32], read func(context.Context) (int32, error)) <-chan result {
	out := make(chan result, 1)
	go func() {
		v, err := g.Do(ctx, read)
		out <- result{v, err}
	}()
	return out
}

func waitFor(t *testing.T, g *Group[int32], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); g.Waiters() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", g.Waiters(), n)
		}
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestJoinRule: without Fresh, a caller joins the read in flight unless its
// deadline ends more than MaxTime/2 after the deadline of the read's caller.
func TestJoinRule(t *testing.T) {
	cases := []struct {
		name          string
		max           time.Duration
		first, second time.Duration // the callers' timeouts; 0: none
		reads         int32
	}{
		{"no deadlines, no bound", 0, 0, 0, 1},
		{"no deadlines, within half the bound", time.Minute, 0, 0, 1},
		{"equal deadlines", time.Minute, 10 * time.Second, 10 * time.Second, 1},
		{"the second is less patient", time.Minute, time.Minute, time.Second, 1},
		{"the second is patient, the first was not", time.Minute, time.Second, time.Minute, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, r := &Group[int32]{MaxTime: tc.max}, newGate()
			ctx := func(d time.Duration) context.Context {
				if d == 0 {
					return context.Background()
				}
				return withTimeout(t, d)
			}
			first := goDo(ctx(tc.first), g, r.read)
			<-r.started
			second := goDo(ctx(tc.second), g, r.read)
			waitFor(t, g, 2)
			if tc.reads == 2 {
				<-r.started
			}
			close(r.release)
			a, b := <-first, <-second
			if a.err != nil || b.err != nil || a.v != 1 || b.v != tc.reads {
				t.Errorf("got %+v, %+v; want reads 1 and %d", a, b, tc.reads)
			}
			if n := r.runs.Load(); n != tc.reads {
				t.Errorf("%d reads, want %d", n, tc.reads)
			}
		})
	}
}

// TestImpatientCallerDoesNotCutShortTheRead: a caller with a short
// deadline starts a read and a caller with a longer one joins it; the
// read runs under MaxTime from its start, not the first caller's deadline,
// and goes on for the second caller once the first has left.
func TestImpatientCallerDoesNotCutShortTheRead(t *testing.T) {
	g, r := &Group[int32]{MaxTime: time.Minute}, newGate()
	start := time.Now()
	impatient := goDo(withTimeout(t, 50*time.Millisecond), g, r.read)
	<-r.started
	readCtx := <-r.ctxs
	patient := goDo(withTimeout(t, 20*time.Second), g, r.read)
	waitFor(t, g, 2)
	if res := <-impatient; !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: %v, want its own deadline", res.err)
	}
	if err := readCtx.Err(); err != nil {
		t.Fatalf("read ended when the impatient caller left: %v", err)
	}
	if dl, ok := readCtx.Deadline(); !ok || dl.Before(start.Add(time.Minute)) || dl.After(time.Now().Add(time.Minute)) {
		t.Errorf("read deadline %v (set %v), want MaxTime from its start", dl, ok)
	}
	close(r.release)
	if res := <-patient; res.err != nil || res.v != 1 {
		t.Errorf("patient caller: %+v, want read 1", res)
	}
}

// TestReadBoundedAndCancelled: a read ends at MaxTime, and when every caller
// has left.
func TestReadBoundedAndCancelled(t *testing.T) {
	t.Run("MaxTime", func(t *testing.T) {
		g, r := &Group[int32]{MaxTime: 50 * time.Millisecond}, newGate()
		if _, err := g.Do(context.Background(), r.read); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want DeadlineExceeded", err)
		}
	})
	t.Run("every caller leaves", func(t *testing.T) {
		g, r := &Group[int32]{}, newGate()
		ctx1, cancel1 := context.WithCancel(context.Background())
		ctx2, cancel2 := context.WithCancel(context.Background())
		first := goDo(ctx1, g, r.read)
		<-r.started
		readCtx := <-r.ctxs
		second := goDo(ctx2, g, r.read)
		waitFor(t, g, 2)
		cancel1()
		<-first
		time.Sleep(20 * time.Millisecond)
		if err := readCtx.Err(); err != nil {
			t.Fatalf("read cancelled while a caller waits: %v", err)
		}
		cancel2()
		if res := <-second; !errors.Is(res.err, context.Canceled) {
			t.Errorf("second caller: %v", res.err)
		}
		<-readCtx.Done()
		// A later caller starts afresh.
		close(r.release)
		if v, err := g.Do(context.Background(), r.read); err != nil || v != 2 {
			t.Errorf("later caller: %d, %v; want read 2", v, err)
		}
	})
}

// TestFreshReadsAreNotJoined: with Fresh, callers arriving while a read
// runs share the next read, which starts once the running one ends and
// runs the read of its most patient caller.
func TestFreshReadsAreNotJoined(t *testing.T) {
	g, r := &Group[int32]{Fresh: true, MaxTime: time.Hour}, newGate()
	release1 := make(chan struct{})
	first := goDo(context.Background(), g, func(ctx context.Context) (int32, error) {
		r.started <- 0
		<-release1
		return 1, nil
	})
	<-r.started
	patient := func(ctx context.Context) (int32, error) { v, err := r.read(ctx); return 100 + v, err }
	second := goDo(withTimeout(t, time.Second), g, r.read)
	waitFor(t, g, 2)
	third := goDo(withTimeout(t, time.Minute), g, patient)
	waitFor(t, g, 3)
	fourth := goDo(withTimeout(t, 10*time.Second), g, r.read)
	waitFor(t, g, 4)
	if n := r.runs.Load(); n != 0 {
		t.Fatalf("the next read started while the first ran")
	}
	close(release1)
	<-r.started
	close(r.release)
	want := []int32{1, 101, 101, 101}
	for i, ch := range []<-chan result{first, second, third, fourth} {
		if res := <-ch; res.err != nil || res.v != want[i] {
			t.Errorf("caller %d: %+v, want %d", i+1, res, want[i])
		}
	}
	if n := r.runs.Load(); n != 1 {
		t.Errorf("%d reads after the first, want 1", n)
	}
}

// TestFreshCallerHoldsTheReadItWaitsBehind: the read running when a caller
// arrives goes on while that caller waits for the next, even when its own
// callers have left.
func TestFreshCallerHoldsTheReadItWaitsBehind(t *testing.T) {
	g, r := &Group[int32]{Fresh: true}, newGate()
	ctxA, cancelA := context.WithCancel(context.Background())
	a := goDo(ctxA, g, r.read)
	<-r.started
	firstCtx := <-r.ctxs
	b := goDo(context.Background(), g, r.read)
	waitFor(t, g, 2)
	cancelA()
	if res := <-a; !errors.Is(res.err, context.Canceled) {
		t.Errorf("first caller: %v, want its own cancellation", res.err)
	}
	if err := firstCtx.Err(); err != nil {
		t.Fatalf("the running read was cancelled (%v) while a caller waited behind it", err)
	}
	close(r.release)
	if res := <-b; res.err != nil || res.v != 2 {
		t.Errorf("second caller: %+v, want read 2", res)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running != nil || g.next != nil || g.waiting != 0 {
		t.Errorf("reads still held after every caller left")
	}
}
