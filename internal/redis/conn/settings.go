package conn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Observer receives the duration of every round trip, labelled by operation
// (scan, hgetall, info, ping, connect). A pipelined batch is one round trip.
type Observer func(operation string, d time.Duration)

// Settings are how every connection is dialled and every command run, and
// how gently a read pages (ScanCount) and batches (BatchSize).
type Settings struct {
	Target    Target // credentials, database and TLS; the address of a single server
	ScanCount int
	BatchSize int
	observe   Observer
	tls       func() *tls.Config     // asked at each dial, so a reload reaches new connections
	password  func() (string, error) // asked at each dial, so a rotated file needs no restart
	timeouts  struct{ dial, read, write time.Duration }
	maxReply  int // bytes of one reply held in memory; 0: unbounded
}

// MaxIdle is how many idle connections a pool keeps.
const MaxIdle = 2

// maxConnsPerNode bounds the pool of each node: a read takes 1 + the hash
// readers, INFO and the API's single-key reads a few more.
const maxConnsPerNode = 8

// Option configures Settings.
type Option func(*Settings)

// WithPasswordFunc makes every new connection ask password for the
// password, overriding the URL's ("" keeps it).
func WithPasswordFunc(password func() (string, error)) Option {
	return func(s *Settings) { s.password = password }
}

// WithTimeouts sets the dial, read and write timeouts of each connection.
// A command's wait is also bounded by its context's deadline.
func WithTimeouts(dial, read, write time.Duration) Option {
	return func(s *Settings) { s.timeouts.dial, s.timeouts.read, s.timeouts.write = dial, read, write }
}

// WithScanCount sets the COUNT hint of each SCAN call.
func WithScanCount(n int) Option { return func(s *Settings) { s.ScanCount = n } }

// WithBatchSize sets how many HGETALLs go in one pipelined round trip.
func WithBatchSize(n int) Option { return func(s *Settings) { s.BatchSize = n } }

// WithObserver sets where round-trip durations are reported.
func WithObserver(o Observer) Option { return func(s *Settings) { s.observe = o } }

// WithTLSConfigFunc makes every new rediss:// connection ask c for its TLS
// configuration; nil from c means the defaults.
func WithTLSConfigFunc(c func() *tls.Config) Option { return func(s *Settings) { s.tls = c } }

// WithMaxReplyBytes bounds the bytes of one reply held in memory (default
// DefaultMaxReplyBytes; 0 or less: unbounded). A usage hash over it is
// unreadable (usage.ReasonOversizedHash); any other reply over it fails its
// call (see boundedConn).
func WithMaxReplyBytes(n int) Option { return func(s *Settings) { s.maxReply = max(n, 0) } }

// NewSettings applies opts over the defaults.
func NewSettings(target Target, opts ...Option) (*Settings, error) {
	s := &Settings{Target: target, ScanCount: 2000, BatchSize: 1000, observe: func(string, time.Duration) {}, maxReply: DefaultMaxReplyBytes}
	s.timeouts.dial, s.timeouts.read, s.timeouts.write = 2*time.Second, 5*time.Second, 5*time.Second
	for _, o := range opts {
		o(s)
	}
	if s.ScanCount < 1 || s.BatchSize < 1 {
		return nil, fmt.Errorf("redis scan count (%d) and batch size (%d) must be positive", s.ScanCount, s.BatchSize)
	}
	return s, nil
}

// ReadTimeout is the cap on one command's wait for its reply; 0: none.
func (s *Settings) ReadTimeout() time.Duration { return s.timeouts.read }

// Observe reports one round trip of operation op.
func (s *Settings) Observe(op string, d time.Duration) { s.observe(op, d) }

// NewPool returns a pool of connections to addr.
func (s *Settings) NewPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     MaxIdle,
		MaxActive:   maxConnsPerNode,
		Wait:        true,
		IdleTimeout: 2 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) { return s.Dial(ctx, addr) },
		// A connection idle across a Redis restart is dead: a PING finds out
		// before a read trips over it. A short idle gap is trusted.
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < 100*time.Millisecond {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
	}
}

// Dial connects to addr with the settings' credentials, database, TLS,
// timeouts and reply bound.
func (s *Settings) Dial(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dial(ctx, addr, newBoundedConn)
}

// DialSubscriber dials like Dial for a connection that only receives
// pushed messages: the bound applies to each message, not to their sum.
func (s *Settings) DialSubscriber(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dial(ctx, addr, newStreamBoundedConn)
}

func (s *Settings) dial(ctx context.Context, addr string, bound func(net.Conn, int) *boundedConn) (redis.Conn, error) {
	t := s.Target
	t.Address = addr
	if s.password != nil {
		password, err := s.password()
		if err != nil {
			return nil, fmt.Errorf("connect to %s: redis password: %w", t, err)
		}
		t = t.withPassword(password)
	}
	opts := []redis.DialOption{
		redis.DialReadTimeout(s.timeouts.read),
		redis.DialWriteTimeout(s.timeouts.write),
		redis.DialDatabase(t.DB),
		// Our own dial puts the reply bound above TLS, on the bytes redigo parses.
		redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dialConn(ctx, network, addr, bound)
		}),
	}
	if t.Password != "" {
		opts = append(opts, redis.DialPassword(t.Password))
	}
	if t.Username != "" {
		opts = append(opts, redis.DialUsername(t.Username))
	}
	start := time.Now()
	c, err := redis.DialContext(ctx, "tcp", addr, opts...)
	if err == nil {
		// The name only helps operators (CLIENT LIST): a server that denies it still serves.
		_, err = redis.DoContext(c, ctx, "CLIENT", "SETNAME", "billing_exporter")
		if _, denied := err.(redis.Error); denied {
			err = nil
		}
		if err != nil {
			c.Close()
		}
	}
	s.observe("connect", time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t, err)
	}
	return c, nil
}

// dialConn opens TCP within the dial timeout, TLS for rediss:// (checking
// the address's host name unless the TLS settings name another), and the
// bound on replies.
func (s *Settings) dialConn(ctx context.Context, network, addr string, bound func(net.Conn, int) *boundedConn) (net.Conn, error) {
	if s.timeouts.dial > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeouts.dial)
		defer cancel()
	}
	d := net.Dialer{KeepAlive: 5 * time.Minute}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if s.Target.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.tls != nil {
			if c := s.tls(); c != nil {
				cfg = c.Clone()
			}
		}
		if cfg.ServerName == "" {
			if cfg.ServerName, _, err = net.SplitHostPort(addr); err != nil {
				conn.Close()
				return nil, err
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	if s.maxReply > 0 {
		conn = bound(conn, s.maxReply)
	}
	return conn, nil
}

// Do runs one command (cmd "" flushes a pipeline and returns its replies)
// and observes its duration as op. The wait for the reply is bounded by
// ctx's deadline and the read timeout, and ends when ctx is cancelled.
func (s *Settings) Do(ctx context.Context, c redis.Conn, op, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	reply, err := redis.DoContext(c, ctx, cmd, args...)
	s.observe(op, time.Since(start))
	if err != nil {
		name := cmd
		if name == "" {
			name = strings.ToUpper(op) + " pipeline"
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return reply, nil
}
