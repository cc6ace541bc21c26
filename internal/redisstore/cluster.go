package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

// ErrTopologyChanged reports that the cluster's slot layout changed while a
// read was under way (a slot finished or started migrating, a failover, a
// MOVED reply): the keys seen so far are no longer known to be complete and
// exactly once, so the read is discarded.
var ErrTopologyChanged = errors.New("redis cluster topology changed during the read")

// readAttempts is how many times ReadUsage reads the whole cluster again
// after ErrTopologyChanged before it reports the read failed.
const readAttempts = 3

// Cluster reads usage state from a Redis Cluster. It keeps one connection
// pool per node, with the same dial settings, timeouts, observer and limits
// as Store.
//
// A read of the usage state is exact or fails: every master is scanned
// (SCAN is per node in a cluster), a key is counted only on the master that
// serves its slot (or the node importing it during a migration), keys are
// counted once even when a migration briefly puts them on two nodes, and the
// read is discarded and done again when the slot layout changed under it.
//
// redisc provides the slot hashing and the parsing of MOVED, ASK and
// TRYAGAIN replies. Its Conn, RetryConn and Refresh are not used for the
// reads themselves because they take no context: every command here runs
// through settings.do on a pooled connection, as in Store, so a scrape's
// deadline bounds each round trip and a cancelled scrape sends no further
// command.
type Cluster struct {
	settings
	seeds []Target

	mu      sync.Mutex
	closed  bool
	pools   map[string]*redis.Pool
	masters []string                 // last master addresses seen, tried first for the topology
	owners  [redisc.HashSlots]string // last known master of each slot, for ReadTenant
}

// NewCluster returns a reader for the cluster that the seed nodes belong to.
// The seeds are only where the topology is first asked for; every master is
// found from the cluster itself. Like New it does not connect.
//
// Every seed must use the same scheme (redis or rediss) and credentials;
// WithPassword overrides the password as for a single server. Redis Cluster
// has only database 0.
func NewCluster(seeds []Target, opts ...Option) (*Cluster, error) {
	if len(seeds) == 0 {
		return nil, errors.New("redis cluster: no seed node")
	}
	base := Target{TLS: seeds[0].TLS, Username: seeds[0].Username}
	for _, s := range seeds {
		if s.DB != 0 {
			return nil, fmt.Errorf("redis cluster seed %s: Redis Cluster has only database 0", s)
		}
		if s.TLS != base.TLS || s.Username != base.Username {
			return nil, fmt.Errorf("redis cluster seed %s: every seed must use the same scheme and user as %s", s, seeds[0])
		}
		if s.Password != "" {
			if base.Password != "" && base.Password != s.Password {
				return nil, fmt.Errorf("redis cluster seed %s: its password differs from another seed's", s)
			}
			base.Password = s.Password
		}
	}
	st, err := newSettings(base, opts)
	if err != nil {
		return nil, err
	}
	return &Cluster{settings: st, seeds: slices.Clone(seeds), pools: map[string]*redis.Pool{}}, nil
}

// String describes the cluster for logs and the landing page.
func (c *Cluster) String() string {
	names := make([]string, len(c.seeds))
	for i, s := range c.seeds {
		names[i] = s.String()
	}
	return "Redis Cluster (seeds " + strings.Join(names, ", ") + ")"
}

// Close releases the connections of every node.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, p := range c.pools {
		p.Close()
	}
	return nil
}

var errClosed = errors.New("redis cluster reader is closed")

// pool returns the connection pool of a node, creating it on first use.
func (c *Cluster) pool(addr string) (*redis.Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	p := c.pools[addr]
	if p == nil {
		p = c.newPool(addr)
		c.pools[addr] = p
	}
	return p, nil
}

// conn returns a connection to a node.
func (c *Cluster) conn(ctx context.Context, addr string) (redis.Conn, error) {
	p, err := c.pool(addr)
	if err != nil {
		return nil, err
	}
	conn, err := p.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	return conn, nil
}
