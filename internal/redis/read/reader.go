// Package read reads the usage state out of Redis; a single server is a
// cluster of one node. See ARCHITECTURE.md.
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

// ErrTopologyChanged reports that the slot layout changed during a read.
var ErrTopologyChanged = errors.New("redis cluster topology changed during the read")

const readAttempts = 3

// Reader reads a single server or a Redis Cluster, exactly or not at all:
// each key once, on the master that serves its slot.
type Reader struct {
	set    *conn.Settings
	seeds  []conn.Target
	single bool
	hints  sizeHints

	mu      sync.Mutex
	closed  bool
	pools   map[string]*redis.Pool
	masters []string // last seen
	owners  [redisc.HashSlots]string
}

// New returns a Reader for one server; it connects as needed.
func New(target conn.Target, opts ...conn.Option) (*Reader, error) {
	set, err := conn.NewSettings(target, opts...)
	if err != nil {
		return nil, err
	}
	return &Reader{set: set, seeds: []conn.Target{target}, single: true, pools: map[string]*redis.Pool{}}, nil
}

// NewCluster returns a Reader for the cluster of the seeds.
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

// String describes the Reader without passwords.
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

// Close closes the pools.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, p := range r.pools {
		p.Close()
	}
	return nil
}

// Conn returns a pooled connection.
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

// name is how spans name addr.
func (r *Reader) name(addr string) string {
	if r.single {
		return ""
	}
	return addr
}

func (r *Reader) nodeErr(addr string, err error) error {
	if r.single {
		return err
	}
	return fmt.Errorf("redis node %s: %w", addr, err)
}

// ReadUsage returns a complete snapshot of periodID.
func (r *Reader) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (_ *usage.Snapshot, err error) {
	if r.single {
		return r.readOnce(ctx, pattern, periodID)
	}
	ctx, span := tracing.Start(ctx, "redis cluster read")
	attempts := 0
	defer func() {
		span.SetAttributes(attribute.Int("redis.read_attempts", attempts))
		tracing.End(span, err)
	}()
	for attempts < readAttempts {
		attempts++
		var snap *usage.Snapshot
		if snap, err = r.readOnce(ctx, pattern, periodID); err == nil {
			return snap, nil
		}
		if !errors.Is(err, ErrTopologyChanged) || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempts) * 25 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%d reads in a row: %w", readAttempts, err)
}

func (r *Reader) readOnce(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	t, err := r.Topology(ctx)
	if err != nil {
		return nil, err
	}
	var snaps []*usage.Snapshot
	seen := map[string]struct{}{}
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

// Merge returns the union of snapshots of disjoint key sets, which lend it
// their tenants until it is released; one is returned as is.
func Merge(periodID string, snaps []*usage.Snapshot) *usage.Snapshot {
	if len(snaps) == 1 {
		return snaps[0]
	}
	out := usage.NewSnapshot(periodID)
	parts := make([]usage.Tenants, len(snaps))
	types, typed := usage.TypeCounts{}, true
	for i, s := range snaps {
		parts[i] = s.Tenants
		out.Changed = append(out.Changed, s.Changed...)
		out.Keys += s.Keys
		for reason, n := range s.Skipped {
			out.Skipped[reason] += n
		}
		for field, n := range s.Types {
			types[field] += n
		}
		typed = typed && s.Types != nil
	}
	if !typed {
		types = nil
	}
	// A key is on one master only, so the parts hold no tenant twice.
	out.Tenants, out.Types = usage.Union(parts...), types
	out.Lend(func() {
		for _, s := range snaps {
			s.Release()
		}
	})
	return out
}

// readMaster reads the keys m serves or imports: others are stale copies.
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

// ReadNode reads node's keys into sink; paced, it rests as long as it works.
func (r *Reader) ReadNode(ctx context.Context, node Node, pattern usage.KeyPattern, periodID string, sink Sink, paced bool) error {
	n := &nodeReader{r: r, addr: node.Addr, pattern: pattern, periodID: periodID, sink: sink, paced: paced, fetch: r.pipeline}
	_, err := n.read(ctx)
	return err
}

// ReadKeys reads keys on node into sink.
func (r *Reader) ReadKeys(ctx context.Context, node Node, keys []Key, sink Sink) error {
	n := &nodeReader{r: r, addr: node.Addr, sink: sink, fetch: r.pipeline}
	batches := make(chan []Key, len(keys)/r.set.BatchSize+1)
	for b := range slices.Chunk(keys, r.set.BatchSize) {
		batches <- b
	}
	close(batches)
	g, ctx := errgroup.WithContext(ctx)
	for range min(HashReaders, len(batches)) {
		g.Go(func() error { return n.readBatches(ctx, batches, nil, nil, nil) })
	}
	return g.Wait()
}

// hgetall reads a batch on m, following ASK to the importing node.
func (r *Reader) hgetall(ctx context.Context, c redis.Conn, t *Topology, m *master, batch []Key) ([]any, error) {
	replies, err := r.pipeline(ctx, c, batch)
	for i := 0; err == nil && !r.single && i < len(replies); i++ {
		rerr, _ := replies[i].(redis.Error)
		if re := redisc.ParseRedir(rerr); re != nil {
			to := t.byID[m.self.migrating[re.NewSlot]]
			if re.Type != "ASK" || to == nil || to.addr != re.Addr || batch[i].asking {
				return nil, fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, batch[i].Name, m.addr, rerr)
			}
			replies[i], err = r.readOne(ctx, to.addr, batch[i].Name, true)
			if rerr, _ := replies[i].(redis.Error); err == nil && redisc.ParseRedir(rerr) != nil {
				err = fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, batch[i].Name, to.addr, rerr)
			}
		}
	}
	return replies, err
}

// ReadTenant reads one usage hash, following MOVED and ASK.
func (r *Reader) ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error) {
	addr := r.seeds[0].Address
	if !r.single {
		slot := redisc.Slot(key)
		r.mu.Lock()
		addr = r.owners[slot]
		r.mu.Unlock()
		if addr == "" {
			t, err := r.Topology(ctx)
			if err != nil {
				return nil, false, nil, err
			}
			addr = t.owner[slot].addr
		}
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

func (r *Reader) readOne(ctx context.Context, addr, key string, asking bool) (_ any, err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "HGETALL", r.name(addr))
	defer func() { rt.End(err) }()
	rt.Calls, rt.Keys = 1, 1
	c, err := r.Conn(ctx, addr)
	if err != nil {
		return nil, r.nodeErr(addr, err)
	}
	defer c.Close()
	replies, err := r.pipeline(ctx, c, []Key{{Name: key, asking: asking}})
	if err != nil {
		return nil, r.nodeErr(addr, err)
	}
	return replies[0], nil
}
