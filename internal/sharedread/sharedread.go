// Package sharedread lets concurrent callers share one in-flight read, so
// that N scrapes arriving together cost the backing stores one read, not N.
//
// Unlike a plain singleflight, the shared read is cancelled when every
// caller waiting for it has gone: a scrape whose client gave up stops
// touching Redis instead of finishing a read nobody will look at.
package sharedread

import (
	"context"
	"sync"
)

// Group runs at most one read at a time and hands its result to every caller
// that arrives while it runs.
type Group[T any] struct {
	mu   sync.Mutex
	call *call[T]
}

type call[T any] struct {
	done   chan struct{}
	cancel context.CancelFunc
	refs   int
	val    T
	err    error
}

// Do returns the result of the read in flight, or starts read if none is.
// The read runs under a context that carries the first caller's deadline and
// values but is cancelled only when no caller is waiting any more. A caller
// whose own context ends returns ctx.Err() at once.
func (g *Group[T]) Do(ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	g.mu.Lock()
	c := g.call
	if c == nil {
		readCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if dl, ok := ctx.Deadline(); ok {
			var cancelDeadline context.CancelFunc
			readCtx, cancelDeadline = context.WithDeadline(readCtx, dl)
			cancel = joinCancel(cancel, cancelDeadline)
		}
		c = &call[T]{done: make(chan struct{}), cancel: cancel}
		g.call = c
		go g.run(c, readCtx, read)
	}
	c.refs++
	g.mu.Unlock()

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

func (g *Group[T]) run(c *call[T], ctx context.Context, read func(context.Context) (T, error)) {
	c.val, c.err = read(ctx)
	g.mu.Lock()
	if g.call == c {
		g.call = nil
	}
	g.mu.Unlock()
	c.cancel()
	close(c.done)
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
	c.cancel()
	if g.call == c {
		g.call = nil
	}
}

func joinCancel(a, b context.CancelFunc) context.CancelFunc {
	return func() { b(); a() }
}
