package redisstore

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// A command's wait for its reply follows its context as the context stands
// while it waits, not as it stood when the command was sent. The read a
// scrape shares with other scrapes runs until the latest deadline among the
// scrapes waiting for it (internal/sharedread): when a scrape with a 10 s
// deadline joins a read that a 0.1 s client started, the round trip already
// in flight must get the 10 s too, or the impatient client's deadline still
// cuts the read every patient scrape waits for. redigo bounds a reply by a
// read deadline fixed when the command is sent (redis.DoWithTimeout, and
// redis.DoContext, which also runs each call on a goroutine of its own);
// the two types below let the deadline move instead:
//
//   - deadlineConn, the TCP connection under TLS and redigo, turns a read
//     deadline that passed into a fresh wait when the context's deadline has
//     moved later in the meantime, and cuts the wait at once when the
//     context is cancelled (every waiter gone);
//   - contextConn, the redis.Conn that dial returns, tells its deadlineConn
//     which context the command in flight belongs to (DoContext and
//     ReceiveContext, which redigo's pool forwards to it).
//
// A TCP read that timed out can be resumed (net.Conn's deadline contract),
// and resuming below TLS and the reply bound keeps both unaware of it.

// deadlineConn is a TCP connection whose reads are bounded by the earlier
// of redigo's read deadline (the per-call cap, --redis.read-timeout) and
// the deadline of the context of the command in flight, re-read whenever
// the wait runs out.
type deadlineConn struct {
	net.Conn

	mu       sync.Mutex
	deadline time.Time  // the read deadline redigo set; zero: none
	call     *following // the command in flight's context, or nil
}

// following is the context one command follows.
type following struct{ ctx context.Context }

func newDeadlineConn(c net.Conn) *deadlineConn { return &deadlineConn{Conn: c} }

// SetReadDeadline records redigo's deadline; Read applies it.
func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// SetDeadline sets the write deadline on the connection and records the
// read deadline.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// readDeadline is the deadline a read waits for now: redigo's, or the
// context's when that is earlier.
func (c *deadlineConn) readDeadline(ctx context.Context) time.Time {
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	if ctx != nil {
		if cdl, ok := ctx.Deadline(); ok && (dl.IsZero() || cdl.Before(dl)) {
			dl = cdl
		}
	}
	return dl
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	var ctx context.Context
	c.mu.Lock()
	if c.call != nil {
		ctx = c.call.ctx
	}
	c.mu.Unlock()
	for {
		if err := c.Conn.SetReadDeadline(c.readDeadline(ctx)); err != nil {
			return 0, err
		}
		// Checked after the deadline is set: a cancellation from now on
		// finds the read under way and cuts it (follow's AfterFunc).
		if ctx != nil && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		n, err := c.Conn.Read(b)
		if err == nil || ctx == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if n > 0 || !c.readDeadline(ctx).After(time.Now()) {
			return n, err
		}
		// The context's deadline moved later while this read waited
		// (another scrape joined the shared read), or a wake-up meant for
		// an earlier command came late: wait on.
	}
}

// follow makes the reads of the command about to run follow ctx, until the
// returned function is called.
func (c *deadlineConn) follow(ctx context.Context) (release func()) {
	call := &following{ctx: ctx}
	c.mu.Lock()
	c.call = call
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		// Wakes a read blocked on the connection, which then sees ctx
		// ended; nothing once the command is over.
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.call == call {
			_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
		}
	})
	return func() {
		stop()
		c.mu.Lock()
		c.call = nil
		c.mu.Unlock()
	}
}

// contextConn is a Redis connection whose context-aware calls follow their
// context's deadline as it moves (see above) without a goroutine per call;
// the read timeout caps each call.
type contextConn struct {
	redis.Conn // redigo's connection, with its read and write timeouts
	net        *deadlineConn
	timeout    time.Duration // the cap on one call's wait; 0: none
}

func (c *contextConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer c.net.follow(ctx)()
	reply, err := redis.DoWithTimeout(c.Conn, c.timeout, cmd, args...)
	return reply, contextError(ctx, err)
}

func (c *contextConn) ReceiveContext(ctx context.Context) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer c.net.follow(ctx)()
	reply, err := redis.ReceiveWithTimeout(c.Conn, c.timeout)
	return reply, contextError(ctx, err)
}

func (c *contextConn) DoWithTimeout(timeout time.Duration, cmd string, args ...any) (any, error) {
	return redis.DoWithTimeout(c.Conn, timeout, cmd, args...)
}

func (c *contextConn) ReceiveWithTimeout(timeout time.Duration) (any, error) {
	return redis.ReceiveWithTimeout(c.Conn, timeout)
}

// contextError says that a call failed because its context ended (the
// deadline of every waiter passed, or they all left) rather than with the
// bare network timeout the connection saw.
func contextError(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return err // Redis answered
	}
	return ctx.Err()
}
