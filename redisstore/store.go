package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/usage"
)

// Observer receives the duration of every round trip the store makes to
// Redis, labelled by operation (scan, hgetall, info, ping). A pipelined batch
// is one round trip and one observation.
type Observer func(operation string, d time.Duration)

// Store reads usage state from a single Redis server through a pool.
type Store struct {
	lastKeys    atomic.Int64 // keys seen by the last scan, to size the next one's set
	lastTenants atomic.Int64 // tenants of the last read, to size the next one's map
	settings
	pool *redis.Pool
}

// settings are what every Option sets; Store and Cluster share them, so
// that a single server and a cluster are dialled, authenticated, bounded
// and observed the same way.
type settings struct {
	// target holds the address (Store only) and the credentials, database
	// and TLS choice every connection uses.
	target    Target
	scanCount int
	batchSize int
	observe   Observer
	tls       *tls.Config
	timeouts  struct{ dial, read, write time.Duration }
	maxConns  int
	maxReply  int // bytes of one reply; 0: unbounded
}

// Option configures a Store or a Cluster.
type Option func(*settings)

// WithPassword sets the password, overriding one given in the URL. It is how
// --redis.password-file and REDIS_PASSWORD reach the connection.
func WithPassword(password string) Option {
	return func(s *settings) {
		if password == "" {
			return
		}
		if s.target.loneName && s.target.Username == "" {
			// redis://name@host with a password from elsewhere: the lone
			// name is the user, not a password.
			s.target.Username = s.target.Password
		}
		s.target.Password = password
	}
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
func WithTLSConfig(c *tls.Config) Option { return func(s *settings) { s.tls = c } }

// WithMaxReplyBytes bounds the bytes of one reply held in memory (default
// DefaultMaxReplyBytes; 0 or less: unbounded). A usage hash over the bound
// is skipped and counted under usage.ReasonOversizedHash; any other reply
// over it (a SCAN page, INFO) fails its call with an error that says so.
// The replies to one pipelined batch are bounded to a few times it
// together.
func WithMaxReplyBytes(n int) Option { return func(s *settings) { s.maxReply = max(n, 0) } }

// WithMaxConnections bounds the pool (of each node, in a cluster).
func WithMaxConnections(n int) Option { return func(s *settings) { s.maxConns = n } }

// newSettings applies opts over the defaults.
func newSettings(target Target, opts []Option) (settings, error) {
	s := settings{
		target:    target,
		scanCount: 2000,
		batchSize: 1000,
		observe:   func(string, time.Duration) {},
		maxConns:  8,
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

// newPool returns a pool of connections to addr.
func (s *settings) newPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     2,
		MaxActive:   s.maxConns,
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

// New returns a Store for target. It does not connect: the first call does,
// and every later call reconnects as needed, so a Redis that is down at
// start or restarts later is picked up without restarting the exporter.
func New(target Target, opts ...Option) (*Store, error) {
	st, err := newSettings(target, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{settings: st}
	s.pool = s.newPool(s.target.Address)
	return s, nil
}

// dial connects to addr with the credentials, database, TLS and timeouts of
// the settings.
func (s *settings) dial(ctx context.Context, addr string) (redis.Conn, error) {
	opts := []redis.DialOption{
		redis.DialReadTimeout(s.timeouts.read),
		redis.DialWriteTimeout(s.timeouts.write),
		redis.DialDatabase(s.target.DB),
		redis.DialClientName("billing_exporter"),
		// The connection (TLS included) is made here rather than by
		// redigo, so that the bound on replies sits above TLS, on the
		// bytes redigo parses.
		redis.DialContextFunc(s.dialConn),
	}
	if s.target.Password != "" {
		opts = append(opts, redis.DialPassword(s.target.Password))
	}
	if s.target.Username != "" {
		opts = append(opts, redis.DialUsername(s.target.Username))
	}
	start := time.Now()
	c, err := redis.DialContext(ctx, "tcp", addr, opts...)
	s.observe("connect", time.Since(start))
	if err != nil {
		t := s.target
		t.Address = addr
		return nil, fmt.Errorf("connect to %s: %w", t, err)
	}
	return c, nil
}

// dialConn opens the connection redigo speaks over: TCP, TLS for rediss://
// (checking the address's host name unless the TLS settings name another),
// and the bound on replies.
func (s *settings) dialConn(ctx context.Context, network, addr string) (net.Conn, error) {
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
	if s.target.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.tls != nil {
			cfg = s.tls.Clone()
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
		conn = newBoundedConn(conn, s.maxReply)
	}
	return conn, nil
}

// Target returns where the store connects (for logs; String() hides the
// password).
func (s *Store) Target() Target { return s.target }

// Close releases the pool's connections.
func (s *Store) Close() error { return s.pool.Close() }

// do runs one command under ctx and observes its duration.
//
// The deadline becomes the call's read timeout (redis.DoWithTimeout) rather
// than going through redis.DoContext, which runs every call on a goroutine
// of its own: with a few hundred calls per scrape on a busy two-core machine,
// those hand-offs cost about 10 % of the read. A context cancelled without a
// deadline (the client went away) is seen before the next call, so a read
// stops within one round trip, and each round trip is bounded by the read
// timeout.
func (s *settings) do(ctx context.Context, c redis.Conn, op, cmd string, args ...any) (any, error) {
	timeout, err := s.callTimeout(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	reply, err := redis.DoWithTimeout(c, timeout, cmd, args...)
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

// callTimeout is the read timeout of one call under ctx: the time left
// before its deadline, capped by the connection's read timeout; an error
// when ctx has already ended.
func (s *settings) callTimeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	timeout := s.timeouts.read
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return 0, context.DeadlineExceeded
		}
		if timeout <= 0 || left < timeout {
			timeout = left
		}
	}
	return timeout, nil
}

// ReadUsage scans every key that matches the pattern, counts the usage keys
// of all periods, and reads the hashes of periodID with pipelined HGETALLs in
// batches. It returns a complete snapshot or an error, never a partial
// snapshot. Every round trip is bounded by ctx's deadline, and once ctx
// ends no further command is sent.
//
// The read is a pipeline of stages on their own goroutines: scanKeys only
// sends SCANs, sortKeys counts and batches the keys they return, and
// hashReaders connections read the batches. SCAN and HGETALL thus overlap
// on separate connections, and no SCAN waits for this side's processing of
// the one before it. Redis sees one command (or one pipelined batch) at a
// time from each connection, at most 1 + hashReaders at once, never a
// burst.
func (s *Store) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	// run runs one stage; the first stage to fail stops the others.
	run := func(stage func() error) {
		wg.Go(func() {
			if err := stage(); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}

	snap := usage.NewSnapshot(periodID)
	// Sized from the last read, like the scanner's set of keys.
	snap.Tenants = make(map[string]usage.Counters, s.lastTenants.Load()+s.lastTenants.Load()/8)
	defer func() { s.lastTenants.Store(int64(len(snap.Tenants))) }()
	scanned := usage.NewSnapshot(periodID) // Keys and key skips, owned by sortKeys
	pages := make(chan []any, 4)
	batches := make(chan hashBatch, 2)
	run(func() error { defer close(pages); return s.scanKeys(ctx, pattern, pages) })
	run(func() error { defer close(batches); return s.sortKeys(ctx, pattern, pages, scanned, batches) })
	var snapMu sync.Mutex
	for range hashReaders {
		run(func() error { return s.readBatches(ctx, batches, snap, &snapMu) })
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	snap.Keys = scanned.Keys
	for reason, n := range scanned.Skipped {
		snap.Skipped[reason] += n
	}
	return snap, nil
}

// hashBatch is one pipeline's worth of current-period keys.
type hashBatch struct {
	keys, tenants []string
}

// scanKeys SCANs the whole keyspace for the pattern and sends every page of
// keys to out. It does nothing else: a SCAN waits for the previous one's
// reply, so any work done between them would add to every one of the
// hundreds of round trips of a read.
func (s *Store) scanKeys(ctx context.Context, pattern usage.KeyPattern, out chan<- []any) error {
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("redis connection: %w", err)
	}
	defer c.Close()
	glob := pattern.Glob()
	cursor := "0"
	for {
		reply, err := redis.Values(s.do(ctx, c, "scan", "SCAN", cursor, "MATCH", glob, "COUNT", s.scanCount))
		if err != nil {
			return err
		}
		if len(reply) != 2 {
			return fmt.Errorf("SCAN: unexpected reply of %d elements", len(reply))
		}
		if cursor, err = redis.String(reply[0], nil); err != nil {
			return fmt.Errorf("SCAN cursor: %w", err)
		}
		keys, ok := reply[1].([]any)
		if !ok {
			return fmt.Errorf("SCAN keys: unexpected reply type %T", reply[1])
		}
		select {
		case out <- keys:
		case <-ctx.Done():
			return ctx.Err()
		}
		if cursor == "0" {
			return nil
		}
	}
}

// sortKeys counts the usage keys of the pages into snap and sends the
// current period's keys to out in batches.
func (s *Store) sortKeys(ctx context.Context, pattern usage.KeyPattern, pages <-chan []any, snap *usage.Snapshot, out chan<- hashBatch) error {
	// SCAN may return a key more than once; count each key once. Sized
	// from the last read: growing a map of 300k keys costs more than the
	// SCANs.
	seen := make(map[string]struct{}, s.lastKeys.Load()+s.lastKeys.Load()/8)
	defer func() { s.lastKeys.Store(int64(len(seen))) }()
	var batch hashBatch
	send := func() error {
		select {
		case out <- batch:
			batch = hashBatch{}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for page := range pages {
		keys, err := redis.Strings(page, nil)
		if err != nil {
			return fmt.Errorf("SCAN keys: %w", err)
		}
		for _, key := range keys {
			// One map operation per key, not a lookup and then an insert:
			// with 300k keys each is a cache miss (read at 100k tenants:
			// 474–485 ms against 489–504 ms, three runs each).
			n := len(seen)
			if seen[key] = struct{}{}; len(seen) == n {
				continue
			}
			tenant, pid, err := pattern.Parse(key)
			if err != nil {
				snap.Skipped[usage.ReasonMalformedKey]++
				continue
			}
			snap.Keys++
			if pid != snap.PeriodID {
				continue
			}
			batch.keys = append(batch.keys, key)
			batch.tenants = append(batch.tenants, tenant)
			if len(batch.keys) >= s.batchSize {
				if err := send(); err != nil {
					return err
				}
			}
		}
	}
	if len(batch.keys) > 0 {
		return send()
	}
	return ctx.Err()
}

// hashReaders is how many connections read HGETALL batches at once. Redis
// runs one command at a time whatever the number, so its CPU per read does
// not change; what two buy is overlap: while Redis answers one connection's
// batch, the other connection's replies are parsed and decoded here. At
// 100k tenants a whole scrape took 1.30–1.35 × the floor with two against
// 1.40 × with one (two pairs of harness runs).
const hashReaders = 2

// readBatches is one hash reader: it reads the batches it takes from in on
// one connection until in is closed, and adds each batch's hashes to snap
// under mu.
func (s *Store) readBatches(ctx context.Context, in <-chan hashBatch, snap *usage.Snapshot, mu *sync.Mutex) error {
	var c redis.Conn
	dec := usage.NewSnapshot(snap.PeriodID) // this reader's batch, decoded
	for b := range in {
		if c == nil {
			var err error
			if c, err = s.pool.GetContext(ctx); err != nil {
				return fmt.Errorf("redis connection: %w", err)
			}
			defer c.Close()
		}
		if err := s.readHashes(ctx, c, b.keys, b.tenants, dec); err != nil {
			return err
		}
		mu.Lock()
		for tenant, counters := range dec.Tenants {
			snap.Tenants[tenant] = counters
		}
		for reason, n := range dec.Skipped {
			snap.Skipped[reason] += n
		}
		mu.Unlock()
		clear(dec.Tenants)
		clear(dec.Skipped)
	}
	return ctx.Err()
}

// readHashes sends one pipelined batch of HGETALLs and decodes the replies.
func (s *Store) readHashes(ctx context.Context, c redis.Conn, keys, tenants []string, snap *usage.Snapshot) error {
	for _, key := range keys {
		if err := c.Send("HGETALL", key); err != nil {
			return fmt.Errorf("HGETALL: %w", err)
		}
	}
	// Do with no command flushes the pipeline and returns every pending
	// reply; a per-key error (WRONGTYPE) comes back as an element.
	replies, err := redis.Values(s.do(ctx, c, "hgetall", ""))
	if err != nil {
		return err
	}
	if len(replies) != len(keys) {
		return fmt.Errorf("HGETALL: %d replies for %d keys", len(replies), len(keys))
	}
	for i, r := range replies {
		counters, found, err := decodeHGETALL(r, snap.Skipped)
		if err != nil {
			return fmt.Errorf("HGETALL %q: %w", keys[i], err)
		}
		if found {
			snap.Tenants[tenants[i]] = counters
		}
	}
	return nil
}

// decodeHGETALL turns one HGETALL reply into counters. A key holding another
// type is a counted skip, not an error; found is false for a key that
// vanished between SCAN and HGETALL (an empty reply).
func decodeHGETALL(reply any, skipped map[usage.Reason]int) (usage.Counters, bool, error) {
	if rerr, ok := reply.(redis.Error); ok {
		switch {
		case strings.HasPrefix(string(rerr), "WRONGTYPE"):
			skipped[usage.ReasonWrongType]++
			return nil, false, nil
		case isOversized(rerr):
			skipped[usage.ReasonOversizedHash]++
			return nil, false, nil
		}
		return nil, false, rerr
	}
	values, ok := reply.([]any)
	if !ok {
		return nil, false, fmt.Errorf("unexpected reply type %T", reply)
	}
	if len(values) == 0 {
		return nil, false, nil
	}
	// A stack array for the usual four fields instead of redis.ByteSlices'
	// slice per hash (one per tenant per scrape).
	var scratch [8][]byte
	pairs := scratch[:0]
	for _, v := range values {
		b, ok := v.([]byte)
		if !ok {
			return nil, false, fmt.Errorf("unexpected element type %T", v)
		}
		pairs = append(pairs, b)
	}
	return usage.DecodeHash(pairs, skipped), true, nil
}

// ReadTenant reads one usage hash. found is false when the key does not
// exist (or holds another type, which is counted in skipped).
func (s *Store) ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error) {
	c, err := s.pool.GetContext(ctx)
	if err != nil {
		return nil, false, nil, fmt.Errorf("redis connection: %w", err)
	}
	defer c.Close()
	start := time.Now()
	reply, err := redis.DoContext(c, ctx, "HGETALL", key)
	s.observe("hgetall", time.Since(start))
	if err != nil {
		var rerr redis.Error
		if !errors.As(err, &rerr) {
			return nil, false, nil, fmt.Errorf("HGETALL: %w", err)
		}
		reply = rerr
	}
	skipped = map[usage.Reason]int{}
	counters, found, err = decodeHGETALL(reply, skipped)
	if err != nil {
		return nil, false, nil, fmt.Errorf("HGETALL: %w", err)
	}
	return counters, found, skipped, nil
}

// Info runs INFO for the memory and clients sections in one round trip and
// returns the parsed fields. Sections a server does not support are left
// out rather than failing the call.
func (s *Store) Info(ctx context.Context) (map[string]string, error) {
	return s.readInfo(ctx, s.pool)
}

// readInfo runs INFO memory and INFO clients on a connection from pool.
func (s *settings) readInfo(ctx context.Context, pool *redis.Pool) (map[string]string, error) {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis connection: %w", err)
	}
	defer c.Close()
	sections := []string{"memory", "clients"}
	for _, sec := range sections {
		if err := c.Send("INFO", sec); err != nil {
			return nil, fmt.Errorf("INFO: %w", err)
		}
	}
	replies, err := redis.Values(s.do(ctx, c, "info", ""))
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, r := range replies {
		if isOversized(r) {
			return nil, fmt.Errorf("INFO: %w", r.(redis.Error))
		}
		if _, isErr := r.(redis.Error); isErr {
			continue
		}
		text, err := redis.String(r, nil)
		if err != nil {
			return nil, fmt.Errorf("INFO: %w", err)
		}
		for k, v := range ParseInfo(text) {
			fields[k] = v
		}
	}
	return fields, nil
}

// InfoInt returns an integer INFO field, and whether it was present and
// numeric.
func InfoInt(fields map[string]string, name string) (int64, bool) {
	v, ok := fields[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
