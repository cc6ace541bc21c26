package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Store reads usage state from a single Redis server through a pool.
type Store struct {
	settings
	pool  *redis.Pool
	hints sizeHints
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

// String describes the server for logs and the landing page (without the
// password).
func (s *Store) String() string { return s.target.String() }

// Close releases the pool's connections.
func (s *Store) Close() error { return s.pool.Close() }

// ReadUsage scans every key that matches the pattern, counts the usage keys
// of all periods, and reads the hashes of periodID with pipelined HGETALLs in
// batches (the node reader, node.go). It returns a complete snapshot or an
// error, never a partial snapshot.
func (s *Store) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	n := &nodeReader{settings: &s.settings, pool: s.pool, pattern: pattern, periodID: periodID, hints: &s.hints}
	res, err := n.read(ctx)
	if err != nil {
		return nil, err
	}
	return res.snap, nil
}

// ReadTenant reads one usage hash. found is false when the key does not
// exist; a key of another type is found, unreadable, and counted in skipped.
func (s *Store) ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error) {
	ctx, rt := startRoundTrips(ctx, "HGETALL", "")
	defer func() { rt.end(err) }()
	rt.calls, rt.keys = 1, 1
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
