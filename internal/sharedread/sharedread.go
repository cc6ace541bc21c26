// Package sharedread lets concurrent callers share one read.
package sharedread

import (
	"context"
	"sync"
	"time"
)

// Group shares reads; a read is cancelled when its last caller leaves.
type Group[T any] struct {
	MaxTime time.Duration // 0: no bound
	Fresh   bool          // only reads starting after the caller

	mu      sync.Mutex
	running *call[T]
	next    *call[T] // Fresh: starts when running ends
	waiting int
}

type call[T any] struct {
	read   func(context.Context) (T, error)
	first  context.Context
	due    time.Time
	cancel context.CancelFunc
	refs   int
	done   chan struct{}
	val    T
	err    error
}

// Do joins the read in flight unless its deadline is over MaxTime/2 later
// (Fresh: the next read, run for its most patient caller), else starts read.
func (g *Group[T]) Do(ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	due := time.Now().Add(g.limit())
	if dl, ok := ctx.Deadline(); ok && dl.Before(due) {
		due = dl
	}
	g.mu.Lock()
	g.waiting++
	var c, behind *call[T]
	switch r := g.running; {
	case r == nil || !g.Fresh && g.MaxTime > 0 && due.After(r.due.Add(g.MaxTime/2)):
		c = &call[T]{read: read, first: ctx, due: due, done: make(chan struct{})}
		g.start(c)
	case !g.Fresh:
		c = r
	default:
		if g.next == nil {
			g.next = &call[T]{done: make(chan struct{})}
		}
		if c = g.next; c.read == nil || due.After(c.due) {
			c.read, c.first, c.due = read, ctx, due
		}
		behind = r // cut short, it could make the next read costlier
		r.refs++
	}
	c.refs++
	g.mu.Unlock()
	defer g.release(c, behind)
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return *new(T), ctx.Err()
	}
}

// Waiters returns how many callers wait in Do.
func (g *Group[T]) Waiters() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *Group[T]) limit() time.Duration {
	if g.MaxTime > 0 {
		return g.MaxTime
	}
	return 1 << 62
}

// start runs c; g.mu is held.
func (g *Group[T]) start(c *call[T]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.first), g.limit())
	c.cancel, g.running = cancel, c
	go func() {
		val, err := c.read(ctx)
		cancel()
		g.mu.Lock()
		defer g.mu.Unlock()
		c.val, c.err = val, err
		close(c.done)
		if g.running == c {
			g.running = g.next
			if g.next != nil {
				g.next = nil
				g.start(g.running)
			}
		}
	}()
}

func (g *Group[T]) release(c, behind *call[T]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting--
	for _, c := range []*call[T]{c, behind} {
		if c == nil {
			continue
		}
		if c.refs--; c.refs > 0 {
			continue
		}
		if c.cancel != nil {
			c.cancel()
		}
		switch c {
		case g.running: // so had next's callers
			g.running, g.next = nil, nil
		case g.next:
			g.next = nil
		}
	}
}
