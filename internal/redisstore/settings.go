package redisstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Observer receives the duration of every round trip the store makes to
// Redis, labelled by operation (scan, hgetall, info, ping). A pipelined batch
// is one round trip and one observation.
type Observer func(operation string, d time.Duration)

// settings are the connection settings every Option sets, and how a
// connection is dialled (dial) and a command run (do). Store and Cluster
// share them, so that a single server and a cluster are dialled,
// authenticated, bounded and observed the same way.
type settings struct {
	// target holds the address (Store only) and the credentials, database
	// and TLS choice every connection uses.
	target    Target
	scanCount int
	batchSize int
	observe   Observer
	// tls, when set, is asked at each dial: a reload's new CA bundle or
	// client certificate is used by the next connection.
	tls func() *tls.Config
	// password, when set, is asked at each dial: a password file rotated
	// in place is used by the next connection, without a restart.
	password func() (string, error)
	timeouts struct{ dial, read, write time.Duration }
	maxReply int // bytes of one reply held in memory; 0: unbounded
}

// maxConnsPerNode bounds the pool of the server, or of each node of a
// cluster: a read takes 1 + hashReaders connections, INFO and the API's
// single-key reads a few more.
const maxConnsPerNode = 8

// Option configures a Store or a Cluster.
type Option func(*settings)

// WithPassword sets the password, overriding one given in the URL. It is how
// --redis.password-file and REDIS_PASSWORD reach the connection.
func WithPassword(password string) Option {
	return func(s *settings) { s.target = s.target.withPassword(password) }
}

// WithPasswordFunc makes every new connection ask password for the
// password, as WithPassword would set it ("" keeps the URL's). It is how
// --redis.password-file rotates: the file is read when a connection is
// dialled, so after Redis changes the password (and cuts the connections,
// or a connection fails to authenticate and is dropped) the next dial uses
// the new one.
func WithPasswordFunc(password func() (string, error)) Option {
	return func(s *settings) { s.password = password }
}

// withPassword is t with password from elsewhere than the URL.
func (t Target) withPassword(password string) Target {
	if password == "" {
		return t
	}
	if t.loneName && t.Username == "" {
		// redis://name@host with a password from elsewhere: the lone
		// name is the user, not a password.
		t.Username = t.Password
	}
	t.Password = password
	return t
}

// WithTimeouts sets the dial, read and write timeouts of each connection.
// Every call is further bounded by its context's deadline.
func WithTimeouts(dial, read, write time.Duration) Option {
	return func(s *settings) { s.timeouts.dial, s.timeouts.read, s.timeouts.write = dial, read, write }
}

// WithScanCount sets the COUNT hint of each SCAN call.
func WithScanCount(n int) Option { return func(s *settings) { s.scanCount = n } }

// WithBatchSize sets how many HGETALLs go in one pipelined round trip.
func WithBatchSize(n int) Option { return func(s *settings) { s.batchSize = n } }

// WithObserver sets where round-trip durations are reported.
func WithObserver(o Observer) Option { return func(s *settings) { s.observe = o } }

// WithTLSConfig sets the TLS configuration used for rediss:// targets.
func WithTLSConfig(c *tls.Config) Option {
	return func(s *settings) { s.tls = func() *tls.Config { return c } }
}

// WithTLSConfigFunc makes every new connection ask c for its TLS
// configuration, so that a reload can replace it (a new CA bundle) for the
// connections dialled after it; nil from c means the defaults.
func WithTLSConfigFunc(c func() *tls.Config) Option { return func(s *settings) { s.tls = c } }

// WithMaxReplyBytes bounds the bytes of one reply held in memory (default
// DefaultMaxReplyBytes; 0 or less: unbounded). A usage hash over the bound
// is unreadable and counted under usage.ReasonOversizedHash; any other
// reply over it (a SCAN page, INFO, CLUSTER NODES) fails its call with an
// error that says so. The replies to one pipelined batch are bounded to a
// few times it together. Every connection is dialled with the bound, so
// the node reader, the cluster's reads and the single-key read all have it.
func WithMaxReplyBytes(n int) Option { return func(s *settings) { s.maxReply = max(n, 0) } }

// newSettings applies opts over the defaults.
func newSettings(target Target, opts []Option) (settings, error) {
	s := settings{
		target:    target,
		scanCount: 2000,
		batchSize: 1000,
		observe:   func(string, time.Duration) {},
		maxReply:  DefaultMaxReplyBytes,
	}
	s.timeouts.dial, s.timeouts.read, s.timeouts.write = 2*time.Second, 5*time.Second, 5*time.Second
	for _, o := range opts {
		o(&s)
	}
	if s.scanCount < 1 || s.batchSize < 1 {
		return settings{}, fmt.Errorf("redis scan count (%d) and batch size (%d) must be positive", s.scanCount, s.batchSize)
	}
	return s, nil
}

// maxIdle is how many idle connections a pool keeps.
const maxIdle = 2

// newPool returns a pool of connections to addr.
func (s *settings) newPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     maxIdle,
		MaxActive:   maxConnsPerNode,
		Wait:        true,
		IdleTimeout: 2 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) { return s.dial(ctx, addr) },
		// A connection idle across a Redis restart is dead; find out with a
		// PING (bounded by the caller's deadline, like every command)
		// before a scrape trips over it and reports Redis down. A short
		// idle gap is trusted: a scrape borrows its connections back to
		// back.
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, idleSince time.Time) error {
			if time.Since(idleSince) < 100*time.Millisecond {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
	}
}

// dial connects to addr with the credentials, database, TLS, timeouts and
// reply bound of the settings.
func (s *settings) dial(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dialBounded(ctx, addr, newBoundedConn)
}

// dialSubscriber connects like dial, for a connection that only receives
// pushed messages: the bound applies to each message, not to their sum
// between two writes (newStreamBoundedConn).
func (s *settings) dialSubscriber(ctx context.Context, addr string) (redis.Conn, error) {
	return s.dialBounded(ctx, addr, newStreamBoundedConn)
}

func (s *settings) dialBounded(ctx context.Context, addr string, bound func(net.Conn, int) *boundedConn) (redis.Conn, error) {
	t := s.target
	t.Address = addr
	if s.password != nil {
		password, err := s.password()
		if err != nil {
			return nil, fmt.Errorf("connect to %s: redis password: %w", t, err)
		}
		t = t.withPassword(password)
	}
	var tcp *deadlineConn
	opts := []redis.DialOption{
		redis.DialReadTimeout(s.timeouts.read),
		redis.DialWriteTimeout(s.timeouts.write),
		redis.DialDatabase(t.DB),
		// The connection (TLS included) is made by dialConn rather than by
		// redigo, so that the bound on replies sits above TLS, on the
		// bytes redigo parses, and the deadline that follows a context
		// (deadline.go) below it, on the TCP connection.
		redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, dc, err := s.dialConn(ctx, network, addr, bound)
			tcp = dc
			return conn, err
		}),
	}
	if t.Password != "" {
		opts = append(opts, redis.DialPassword(t.Password))
	}
	if t.Username != "" {
		opts = append(opts, redis.DialUsername(t.Username))
	}
	start := time.Now()
	var c redis.Conn
	rc, err := redis.DialContext(ctx, "tcp", addr, opts...)
	if err == nil {
		c = &contextConn{Conn: rc, net: tcp, timeout: s.timeouts.read}
		// The name only tells operators whose connection it is (CLIENT
		// LIST): best effort, so that a server that renamed or denies
		// CLIENT still serves the read. A reply that is not an error
		// reply (the connection broke) fails the dial as any other.
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

// dialConn opens the connection redigo speaks over: TCP within the dial
// timeout, TLS for rediss:// (checking the address's host name unless the
// TLS settings name another, as redigo's own TLS does), and the bound on
// replies (bounded.go). It also returns the TCP connection, whose reads
// follow the context of the command in flight (deadline.go).
func (s *settings) dialConn(ctx context.Context, network, addr string, bound func(net.Conn, int) *boundedConn) (net.Conn, *deadlineConn, error) {
	if s.timeouts.dial > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeouts.dial)
		defer cancel()
	}
	d := net.Dialer{KeepAlive: 5 * time.Minute}
	tcp, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, nil, err
	}
	dc := newDeadlineConn(tcp)
	var conn net.Conn = dc
	if s.target.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.tls != nil {
			if c := s.tls(); c != nil {
				cfg = c.Clone()
			}
		}
		if cfg.ServerName == "" {
			if cfg.ServerName, _, err = net.SplitHostPort(addr); err != nil {
				conn.Close()
				return nil, nil, err
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, nil, err
		}
		conn = tc
	}
	if s.maxReply > 0 {
		conn = bound(conn, s.maxReply)
	}
	return conn, dc, nil
}

// do runs one command under ctx and observes its duration.
//
// The wait for the reply follows ctx as it stands while waiting (a shared
// read's deadline moves later when a patient scrape joins it) and ends at
// once when ctx is cancelled; the connection's read timeout caps it
// (contextConn, deadline.go).
func (s *settings) do(ctx context.Context, c redis.Conn, op, cmd string, args ...any) (any, error) {
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
