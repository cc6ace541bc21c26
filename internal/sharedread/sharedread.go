// Package sharedread lets concurrent callers share one in-flight read, so
// that N scrapes arriving together cost the backing stores one read, not N.
//
// Unlike a plain singleflight, the shared read belongs to all its waiters
// at once: it runs until the latest deadline among the callers waiting for
// it (so one impatient caller, say a client sending a 0.1 s scrape timeout
// in a loop, cannot cut short the read that patient callers wait for), and
// it is cancelled when every caller waiting for it has gone (a scrape whose
// client gave up stops touching Redis instead of finishing a read nobody
// will look at). Callers bound their own deadlines (the /metrics handler
// caps them with --scrape.max-timeout), which bounds the read's.
//
// A caller may join a read only while the read has not yet taken its view
// of the data: a read says so with Seal, and a caller arriving after it
// gets a read of its own (shared with the callers that arrive after it),
// so that what it is given holds every write acknowledged before it
// arrived. A read that never calls Seal can be joined until it ends.
package sharedread

import (
	"context"
	"sync"
	"time"
)

// Group hands the result of one read to every caller that arrives while it
// runs and before it is sealed (see Seal). A sealed read goes on for its
// callers while the next caller starts another.
type Group[T any] struct {
	mu   sync.Mutex
	call *call[T]
	// sealed holds the sealed reads still running. A caller arriving
	// after them waits for a later read, which the store runs after them
	// (a Redis mirror takes one read at a time): the caller holds them too,
	// as if it had joined them, so that they run until its deadline and
	// are not cancelled while it waits behind them. Otherwise one caller
	// with a tiny deadline, whose read sealed itself, could still make a
	// read others wait behind fail.
	sealed map[*call[T]]struct{}
}

type call[T any] struct {
	done chan struct{}
	ctx  *readContext
	refs int
	val  T
	err  error
}

// Do returns the result of the read in flight, or starts read if none is.
// The read runs under a context that carries the first caller's values
// and the latest deadline of the callers waiting for it, and is cancelled
// when no caller is waiting any more. A caller whose own context ends
// returns ctx.Err() at once.
func (g *Group[T]) Do(ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	dl, hasDeadline := ctx.Deadline()
	g.mu.Lock()
	c := g.call
	if c != nil && !c.ctx.extend(dl, hasDeadline) {
		// Its deadline has passed: it is ending; start afresh.
		g.call, c = nil, nil
	}
	if c == nil {
		c = &call[T]{done: make(chan struct{}), ctx: newReadContext(ctx, dl, hasDeadline)}
		c.ctx.seal = func() { g.detach(c) }
		g.call = c
		go g.run(c, read)
	}
	c.refs++
	var behind []*call[T]
	for s := range g.sealed {
		if s.ctx.extend(dl, hasDeadline) {
			s.refs++
			behind = append(behind, s)
		}
	}
	g.mu.Unlock()
	defer func() {
		for _, s := range behind {
			g.leave(s)
		}
	}()

	select {
	case <-c.done:
		g.leave(c)
		return c.val, c.err
	case <-ctx.Done():
		g.leave(c)
		var zero T
		return zero, ctx.Err()
	}
}

// Waiters returns how many callers wait for the read in flight (0: none
// runs), so that a test can tell when a caller has joined it.
func (g *Group[T]) Waiters() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.call == nil {
		return 0
	}
	return g.call.refs
}

func (g *Group[T]) run(c *call[T], read func(context.Context) (T, error)) {
	c.val, c.err = read(c.ctx)
	g.mu.Lock()
	if g.call == c {
		g.call = nil
	}
	delete(g.sealed, c)
	g.mu.Unlock()
	c.ctx.cancel(context.Canceled)
	close(c.done)
}

// detach makes c unjoinable: the next caller starts a new read, and
// holds c while it waits (see Group.sealed).
func (g *Group[T]) detach(c *call[T]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.call != c {
		return // ended, or sealed already
	}
	g.call = nil
	if g.sealed == nil {
		g.sealed = map[*call[T]]struct{}{}
	}
	g.sealed[c] = struct{}{}
}

// sealKey is the context key of a shared read's seal.
type sealKey struct{}

// Seal says that the read running under ctx is about to take its view of
// the data (a Redis mirror's barrier, the start of a full read): a caller
// arriving from now on must not be given its result, which may predate
// writes acknowledged before that caller arrived, and gets a read of its
// own. Under a context that is not a shared read's it does nothing.
func Seal(ctx context.Context) {
	if seal, ok := ctx.Value(sealKey{}).(func()); ok {
		seal()
	}
}

// leave drops one waiter; the last one to leave an unfinished read cancels
// it and detaches it so that a later caller starts afresh.
func (g *Group[T]) leave(c *call[T]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.refs--
	if c.refs > 0 {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.ctx.cancel(context.Canceled)
	if g.call == c {
		g.call = nil
	}
	delete(g.sealed, c)
}

// readContext is the shared read's context: the first caller's values, no
// cancellation of its own, and a deadline that only ever moves later, to
// the latest deadline of the callers that joined. Deadline reports the
// deadline as it stands when called; code that bounds each step by it (a
// Redis round trip, the plans query) gets the longer budget from the next
// step on.
type readContext struct {
	context.Context // values of the first caller; Done and Err from done

	mu          sync.Mutex
	deadline    time.Time // the latest deadline of the waiters
	hasDeadline bool
	timer       *time.Timer
	done        chan struct{}
	err         error
	afterFuncs  map[*func()]struct{} // to run when the context ends
	seal        func()               // Seal's effect, set before the read starts
}

// Value gives Seal the read's seal; other keys are the first caller's.
func (c *readContext) Value(key any) any {
	if key == (sealKey{}) {
		return c.seal
	}
	return c.Context.Value(key)
}

func newReadContext(first context.Context, dl time.Time, hasDeadline bool) *readContext {
	c := &readContext{Context: context.WithoutCancel(first), done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hasDeadline = hasDeadline
	if hasDeadline {
		c.deadline = dl
		c.timer = time.AfterFunc(time.Until(dl), c.expire)
	}
	return c
}

// extend moves the deadline to dl when dl is later, or drops it when the
// joining caller has none. It reports false when the context has already
// ended: the caller must not join.
func (c *readContext) extend(dl time.Time, hasDeadline bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false
	}
	switch {
	case !c.hasDeadline:
	case !hasDeadline:
		c.hasDeadline = false
		c.timer.Stop()
	case dl.After(c.deadline):
		c.deadline = dl
		c.timer.Reset(time.Until(dl))
	}
	return true
}

// expire ends the context when its deadline has come; a timer that fires
// late for a deadline since extended does nothing.
func (c *readContext) expire() {
	c.mu.Lock()
	if !c.hasDeadline || time.Now().Before(c.deadline) {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.cancel(context.DeadlineExceeded)
}

func (c *readContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.timer != nil {
		c.timer.Stop()
	}
	close(c.done)
	for f := range c.afterFuncs {
		go (*f)()
	}
	c.afterFuncs = nil
}

// AfterFunc runs f on a goroutine of its own once the context ends, as
// context.AfterFunc does; stop unregisters it. context.AfterFunc calls it
// for this context (and for contexts derived from it): without it, each
// registration would cost a goroutine waiting on Done, and a Redis
// connection registers one per command it sends under the read.
func (c *readContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	if c.afterFuncs == nil {
		c.afterFuncs = map[*func()]struct{}{}
	}
	key := &f
	c.afterFuncs[key] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.afterFuncs[key]; !ok {
			return false
		}
		delete(c.afterFuncs, key)
		return true
	}
}

func (c *readContext) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, c.hasDeadline
}

func (c *readContext) Done() <-chan struct{} { return c.done }

func (c *readContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
