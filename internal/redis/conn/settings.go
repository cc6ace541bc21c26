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

// Observer receives each round trip's duration.
type Observer func(operation string, d time.Duration)

// Settings dial connections and run commands.
type Settings struct {
	Target    Target
	ScanCount int
	BatchSize int
	observe   Observer
	tls       func() *tls.Config
	password  func() (string, error)
	timeouts  struct{ dial, read, write time.Duration }
	maxReply  int
}

// MaxIdle is a pool's idle connections.
const MaxIdle = 2

const maxConnsPerNode = 8

// Option configures Settings.
type Option func(*Settings)

// WithPasswordFunc asks each dial's password ("": the URL's).
func WithPasswordFunc(password func() (string, error)) Option {
	return func(s *Settings) { s.password = password }
}

// WithTimeouts sets the timeouts.
func WithTimeouts(dial, read, write time.Duration) Option {
	return func(s *Settings) { s.timeouts.dial, s.timeouts.read, s.timeouts.write = dial, read, write }
}

// WithScanCount sets SCAN's COUNT.
func WithScanCount(n int) Option { return func(s *Settings) { s.ScanCount = n } }

// WithBatchSize sets the keys per pipeline.
func WithBatchSize(n int) Option { return func(s *Settings) { s.BatchSize = n } }

// WithObserver times each Redis call.
func WithObserver(o Observer) Option { return func(s *Settings) { s.observe = o } }

// WithTLSConfigFunc asks c at each TLS dial.
func WithTLSConfigFunc(c func() *tls.Config) Option { return func(s *Settings) { s.tls = c } }

// WithMaxReplyBytes bounds a reply; 0: unbounded.
func WithMaxReplyBytes(n int) Option { return func(s *Settings) { s.maxReply = max(n, 0) } }

// NewSettings applies opts to the defaults.
func NewSettings(target Target, opts ...Option) (*Settings, error) {
	s := &Settings{Target: target, ScanCount: 2000, BatchSize: 1000, maxReply: DefaultMaxReplyBytes,
		observe: func(string, time.Duration) {}, tls: func() *tls.Config { return nil }}
	s.timeouts.dial, s.timeouts.read, s.timeouts.write = 2*time.Second, 5*time.Second, 5*time.Second
	for _, o := range opts {
		o(s)
	}
	if s.ScanCount < 1 || s.BatchSize < 1 {
		return nil, fmt.Errorf("redis scan count (%d) and batch size (%d) must be positive", s.ScanCount, s.BatchSize)
	}
	return s, nil
}

// ReadTimeout caps a reply's wait.
func (s *Settings) ReadTimeout() time.Duration { return s.timeouts.read }

// Observe records one call of op.
func (s *Settings) Observe(op string, d time.Duration) { s.observe(op, d) }

// NewPool pools connections to addr.
func (s *Settings) NewPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     MaxIdle,
		MaxActive:   maxConnsPerNode,
		Wait:        true,
		IdleTimeout: 2 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) { return s.Dial(ctx, addr) },
		// An idle connection may have outlived Redis.
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < 100*time.Millisecond {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
	}
}

// Dial connects to addr for commands and pipelines.
func (s *Settings) Dial(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dial(ctx, addr, maxPipelineReplies)
}

// DialSubscriber connects for pushed messages.
func (s *Settings) DialSubscriber(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dial(ctx, addr, 0)
}

func (s *Settings) dial(ctx context.Context, addr string, replies int) (redis.Conn, error) {
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
		redis.DialUsername(t.Username),
		redis.DialPassword(t.Password),
		// The reply bound goes above TLS.
		redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.dialConn(ctx, network, addr, replies)
		}),
	}
	start := time.Now()
	c, err := redis.DialContext(ctx, "tcp", addr, opts...)
	if err == nil {
		// The name only helps operators.
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

func (s *Settings) dialConn(ctx context.Context, network, addr string, replies int) (net.Conn, error) {
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
		if c := s.tls(); c != nil {
			cfg = c.Clone()
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
		conn = newBoundedConn(conn, s.maxReply, replies)
	}
	return conn, nil
}

// Do runs cmd ("": a pipeline flush) as op, bounded by ctx and the read timeout.
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
