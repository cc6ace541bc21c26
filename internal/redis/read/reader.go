// Package read reads the usage state out of Redis: a full read of every
// master, the one-key read, and INFO. A single server is a cluster of one
// node that serves every slot. See ARCHITECTURE.md.
package read

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// ErrTopologyChanged reports that the cluster's slot layout changed during
// a read, which is then discarded: its keys are no longer known to be
// complete and counted once.
var ErrTopologyChanged = errors.New("redis cluster topology changed during the read")

// readAttempts is how many times a cluster read is done again after
// ErrTopologyChanged before it fails.
const readAttempts = 3

// Reader reads usage state from a single server or a Redis Cluster, with
// one connection pool per node. A read is exact or fails: every master is
// scanned, a key is counted only on the master that serves its slot (or
// the one importing it), once, and a read during which the layout changed
// is done again. redisc provides the slot hashing and the parsing of
// redirections; every command runs under its caller's context.
type Reader struct {
	set    *conn.Settings
	seeds  []conn.Target
	single bool
	hints  sizeHints // single server only

	mu      sync.Mutex
	closed  bool
	pools   map[string]*redis.Pool
	masters []string                 // last masters seen, asked first for the topology
	owners  [redisc.HashSlots]string // last known master of each slot, for ReadTenant
}

// New returns a Reader for one server. It does not connect: each call does
// as needed, so a Redis down at start or restarted later is picked up.
func New(target conn.Target, opts ...conn.Option) (*Reader, error) {
	set, err := conn.NewSettings(target, opts...)
	if err != nil {
		return nil, err
	}
	return &Reader{set: set, seeds: []conn.Target{target}, single: true, pools: map[string]*redis.Pool{}}, nil
}

// NewCluster returns a Reader for the cluster the seed nodes belong to;
// every master is found from the cluster itself. The seeds must share
// scheme, user and password; Redis Cluster has only database 0.
func NewCluster(seeds []conn.Target, opts ...conn.Option) (*Reader, error) {
	if len(seeds) == 0 {
		return nil, errors.New("redis cluster: no seed node")
	}
	base := conn.Target{TLS: seeds[0].TLS, Username: seeds[0].Username}
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
	set, err := conn.NewSettings(base, opts...)
	if err != nil {
		return nil, err
	}
	return &Reader{set: set, seeds: slices.Clone(seeds), pools: map[string]*redis.Pool{}}, nil
}

// String describes the server or cluster for logs, without passwords.
func (r *Reader) String() string {
	if r.single {
		return r.seeds[0].String()
	}
	names := make([]string, len(r.seeds))
	for i, s := range r.seeds {
		names[i] = s.String()
	}
	return "Redis Cluster (seeds " + strings.Join(names, ", ") + ")"
}

// Settings returns the connection settings.
func (r *Reader) Settings() *conn.Settings { return r.set }

// Close releases the connections of every node.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, p := range r.pools {
		p.Close()
	}
	return nil
}

// Conn returns a connection to the node at addr from its pool.
func (r *Reader) Conn(ctx context.Context, addr string) (redis.Conn, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("redis reader is closed")
	}
	p := r.pools[addr]
	if p == nil {
		p = r.set.NewPool(addr)
		r.pools[addr] = p
	}
	r.mu.Unlock()
	c, err := p.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis connection: %w", err)
	}
	return c, nil
}

// name is how errors and spans name the node at addr: "" for a single server.
func (r *Reader) name(addr string) string {
	if r.single {
		return ""
	}
	return addr
}

// nodeErr names the node at addr in err, in a cluster.
func (r *Reader) nodeErr(addr string, err error) error {
	if r.single {
		return err
	}
	return fmt.Errorf("redis node %s: %w", addr, err)
}

// ReadUsage returns a complete snapshot of periodID, or an error. A cluster
// read during which the layout changed is done again, up to readAttempts
// times within ctx.
func (r *Reader) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (_ *usage.Snapshot, err error) {
	if r.single {
		return r.readOnce(ctx, pattern, periodID)
	}
	ctx, span := tracing.Start(ctx, "redis cluster read")
	attempts := 0
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("redis.read_attempts", attempts))
		}
		tracing.End(span, err)
	}()
	for attempt := range readAttempts {
		attempts++
		var snap *usage.Snapshot
		if snap, err = r.readOnce(ctx, pattern, periodID); err == nil {
			return snap, nil
		}
		if !errors.Is(err, ErrTopologyChanged) || ctx.Err() != nil {
			return nil, err
		}
		select { // a migration step or a failover settles
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt+1) * 25 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%d reads in a row: %w", readAttempts, err)
}

// readOnce reads every master, level by level (see Topology), and checks
// that the layout held.
func (r *Reader) readOnce(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	t, err := r.Topology(ctx)
	if err != nil {
		return nil, err
	}
	var snaps []*usage.Snapshot
	seen := map[string]struct{}{} // written only between levels
	for _, level := range t.levels {
		res := make([]*nodeResult, len(level))
		g, gctx := errgroup.WithContext(ctx)
		for i, m := range level {
			g.Go(func() (err error) {
				res[i], err = r.readMaster(gctx, t, m, pattern, periodID, seen)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for _, nr := range res {
			for _, k := range nr.keys {
				if _, dup := seen[k]; dup {
					return nil, fmt.Errorf("%w: key %q on two masters", ErrTopologyChanged, k)
				}
				seen[k] = struct{}{}
			}
			snaps = append(snaps, nr.snap)
		}
	}
	if err := r.Verify(ctx, t); err != nil {
		return nil, err
	}
	return Merge(periodID, snaps), nil
}

// Merge returns the union of snapshots of disjoint tenants, releasing them;
// a lone snapshot is returned as it is.
func Merge(periodID string, snaps []*usage.Snapshot) *usage.Snapshot {
	if len(snaps) == 1 {
		return snaps[0]
	}
	out := usage.NewSnapshot(periodID)
	size := 0
	for _, s := range snaps {
		size += len(s.Tenants)
	}
	out.Tenants = make(map[string]usage.Counters, size)
	for _, s := range snaps {
		for id, c := range s.Tenants {
			out.Tenants[id] = c
		}
		out.Keys += s.Keys
		for reason, n := range s.Skipped {
			out.Skipped[reason] += n
		}
		s.Release()
	}
	return out
}

// readMaster reads m's keys that it serves or imports (after ASKING); keys
// of other slots are stale copies no client reaches, and keys in seen were
// read on an earlier level.
func (r *Reader) readMaster(ctx context.Context, t *Topology, m *master, pattern usage.KeyPattern, periodID string, seen map[string]struct{}) (*nodeResult, error) {
	n := &nodeReader{r: r, addr: m.addr, pattern: pattern, periodID: periodID, skip: seen,
		fetch: func(ctx context.Context, c redis.Conn, batch []Key) ([]any, error) {
			return r.hgetall(ctx, c, t, m, batch)
		}}
	if r.single {
		n.hints = &r.hints
	} else {
		n.owns = func(key string) (mine, asking bool) {
			slot := redisc.Slot(key)
			if t.owner[slot] == m {
				return true, false
			}
			return m.self.importing[slot] != "", true
		}
	}
	return n.read(ctx)
}

// ReadNode reads every key of the pattern on one node into sink, paced (each
// round trip followed by a rest as long as it took) or not.
func (r *Reader) ReadNode(ctx context.Context, node Node, pattern usage.KeyPattern, periodID string, sink Sink, paced bool) error {
	n := &nodeReader{r: r, addr: node.Addr, pattern: pattern, periodID: periodID, sink: sink, paced: paced,
		fetch: func(ctx context.Context, c redis.Conn, batch []Key) ([]any, error) { return r.pipeline(ctx, c, batch) }}
	_, err := n.read(ctx)
	return err
}

// hgetall reads one batch on c, m's connection: one reply per key, a key
// that moved to the node importing its slot since the SCAN read there.
func (r *Reader) hgetall(ctx context.Context, c redis.Conn, t *Topology, m *master, batch []Key) ([]any, error) {
	replies, err := r.pipeline(ctx, c, batch)
	if err != nil || r.single {
		return replies, err
	}
	asked := map[*master][]int{}
	for i, reply := range replies {
		rerr, ok := reply.(redis.Error)
		re := redisc.ParseRedir(rerr)
		if !ok || re == nil {
			continue
		}
		to := t.byID[m.self.migrating[re.NewSlot]]
		if re.Type != "ASK" || to == nil || to.addr != re.Addr || batch[i].asking {
			return nil, fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, batch[i].Name, m.addr, rerr)
		}
		asked[to] = append(asked[to], i)
	}
	for to, idx := range asked {
		keys := make([]Key, len(idx))
		for j, i := range idx {
			keys[j] = Key{Name: batch[i].Name, Tenant: batch[i].Tenant, asking: true}
		}
		more, err := r.hgetallOn(ctx, to.addr, keys)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			if rerr, ok := more[j].(redis.Error); ok && redisc.ParseRedir(rerr) != nil {
				return nil, fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, keys[j].Name, to.addr, rerr)
			}
			replies[i] = more[j]
		}
	}
	return replies, nil
}

// hgetallOn reads keys on the node at addr with a connection of its own.
func (r *Reader) hgetallOn(ctx context.Context, addr string, keys []Key) ([]any, error) {
	c, err := r.Conn(ctx, addr)
	if err != nil {
		return nil, r.nodeErr(addr, err)
	}
	defer c.Close()
	replies, err := r.pipeline(ctx, c, keys)
	if err != nil {
		return nil, r.nodeErr(addr, err)
	}
	return replies, nil
}

// ReadTenant reads one usage hash, in a cluster from the master that serves
// its slot (following MOVED and ASK). found is false when the key does not
// exist; a key of another type is found, unreadable, and counted in skipped.
func (r *Reader) ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error) {
	addr, err := r.owner(ctx, redisc.Slot(key))
	if err != nil {
		return nil, false, nil, err
	}
	asking := false
	for range 5 {
		reply, err := r.readOne(ctx, addr, key, asking)
		if err != nil {
			return nil, false, nil, err
		}
		if rerr, ok := reply.(redis.Error); ok && !r.single {
			if re := redisc.ParseRedir(rerr); re != nil {
				addr, asking = re.Addr, re.Type == "ASK"
				if !asking {
					r.mu.Lock()
					r.owners[re.NewSlot] = re.Addr
					r.mu.Unlock()
				}
				continue
			}
			if redisc.IsTryAgain(rerr) {
				select {
				case <-ctx.Done():
					return nil, false, nil, ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
		}
		skipped = map[usage.Reason]int{}
		if counters, found, err = DecodeHGETALL(reply, skipped); err != nil {
			return nil, false, nil, r.nodeErr(addr, fmt.Errorf("HGETALL: %w", err))
		}
		return counters, found, skipped, nil
	}
	return nil, false, nil, fmt.Errorf("HGETALL %q: too many cluster redirections", key)
}

// readOne runs one HGETALL (after ASKING) on the node at addr.
func (r *Reader) readOne(ctx context.Context, addr, key string, asking bool) (_ any, err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "HGETALL", r.name(addr))
	defer func() { rt.End(err) }()
	rt.Calls, rt.Keys = 1, 1
	replies, err := r.hgetallOn(ctx, addr, []Key{{Name: key, asking: asking}})
	if err != nil {
		return nil, err
	}
	return replies[0], nil
}

// owner returns the address of the master that serves slot, as last seen.
func (r *Reader) owner(ctx context.Context, slot int) (string, error) {
	if r.single {
		return r.seeds[0].Address, nil
	}
	r.mu.Lock()
	addr := r.owners[slot]
	r.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	lines, _, err := r.view(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.masters = masterAddrs(lines)
	for _, n := range lines {
		if !n.has("master") || n.addr == "" {
			continue
		}
		for _, c := range n.claims {
			for s := c[0]; s <= c[1]; s++ {
				r.owners[s] = n.addr
			}
		}
	}
	if r.owners[slot] == "" {
		return "", fmt.Errorf("redis cluster: slot %d is served by no master", slot)
	}
	return r.owners[slot], nil
}
