package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"go.opentelemetry.io/otel/attribute"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// and both over the cancellations they caused.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, i); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	rank := func(err error) int {
		switch {
		case err == nil:
			return 3
		case errors.Is(err, context.Canceled):
			return 2
		case errors.Is(err, ErrTopologyChanged):
			return 1
		}
		return 0
	}
	var best error
	for _, err := range errs {
		if err != nil && (best == nil || rank(err) < rank(best)) {
			best = err
		}
	}
	return best
}

// ReadUsage reads the usage state of the whole cluster: SCAN with MATCH and
// COUNT on every master, pipelined HGETALLs in batches on the node that holds
// each key. It returns a complete snapshot (the same one a single server
// holding the same keys gives) or an error, never a partial one: a master
// that cannot be read fails the read, and a read during which the slot
// layout changed is done again, up to three times within ctx, then fails
// with ErrTopologyChanged.
func (c *Cluster) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (_ *usage.Snapshot, err error) {
	// One span over the attempts: each master's SCAN and HGETALL spans,
	// and the CLUSTER NODES of discovery and verification, are its children.
	ctx, span := tracing.Start(ctx, "redis cluster read")
	attempts := 0
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("redis.read_attempts", attempts))
		}
		tracing.End(span, err)
	}()
	for attempt := 0; attempt < readAttempts; attempt++ {
		attempts++
		var snap *usage.Snapshot
		snap, err = c.readOnce(ctx, pattern, periodID)
		if err == nil {
			return snap, nil
		}
		if !errors.Is(err, ErrTopologyChanged) || ctx.Err() != nil {
			return nil, err
		}
		// Give a migration step or a failover a moment to settle.
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt+1) * 25 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%d reads in a row: %w", readAttempts, err)
}

func (c *Cluster) readOnce(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	t, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	snap := usage.NewSnapshot(periodID)
	seen := map[string]struct{}{}
	for _, level := range t.levels {
		reads := make([]*nodeResult, len(level))
		err := parallel(ctx, len(level), func(ctx context.Context, i int) error {
			var err error
			reads[i], err = c.readNode(ctx, t, level[i], pattern, periodID, seen)
			return err
		})
		if err != nil {
			return nil, err
		}
		// seen is only read while a level runs, and grows between levels.
		for _, r := range reads {
			for _, k := range r.keys {
				if _, dup := seen[k]; dup {
					// Two nodes of one level claimed a key: the layout
					// they were read under no longer holds.
					return nil, fmt.Errorf("%w: key %q on two masters", ErrTopologyChanged, k)
				}
				seen[k] = struct{}{}
			}
			snap.Keys += r.snap.Keys
			for reason, n := range r.snap.Skipped {
				snap.Skipped[reason] += n
			}
			for id, counters := range r.snap.Tenants {
				snap.Tenants[id] = counters
			}
		}
	}
	if err := c.verify(ctx, t); err != nil {
		return nil, err
	}
	return snap, nil
}

// readNode reads one master with the node reader, keeping the keys it is
// authoritative for: keys of slots it serves, and keys of slots it is
// importing (read after ASKING). Keys it holds for any other slot are stale
// copies no client can reach, and are left out; keys read on a node of an
// earlier level (seen) too.
func (c *Cluster) readNode(ctx context.Context, t *topology, m *master, pattern usage.KeyPattern, periodID string, seen map[string]struct{}) (*nodeResult, error) {
	p, err := c.pool(m.addr)
	if err != nil {
		return nil, err
	}
	n := &nodeReader{
		settings: &c.settings, pool: p, node: m.addr, pattern: pattern, periodID: periodID, skip: seen,
		owns: func(key string) (mine, asking bool) {
			slot := redisc.Slot(key)
			switch {
			case t.owner[slot] == m:
				return true, false
			case m.self.importing[slot] != "":
				return true, true
			}
			return false, false
		},
		readBatch: func(ctx context.Context, conn redis.Conn, batch []pending, into *usage.Snapshot) error {
			return c.readHashes(ctx, conn, t, m, batch, into)
		},
	}
	return n.read(ctx)
}

// readHashes sends one pipelined batch of HGETALLs to m and decodes the
// replies. A key that left m for the node importing its slot since the SCAN
// comes back as an ASK redirection and is read there.
func (c *Cluster) readHashes(ctx context.Context, conn redis.Conn, t *topology, m *master, batch []pending, r *usage.Snapshot) error {
	// Errors about m itself are named by the node reader.
	replies, err := c.pipelineHGETALL(ctx, conn, batch)
	if err != nil {
		return err
	}
	asked := map[*master][]pending{}
	for i, reply := range replies {
		p := batch[i]
		if rerr, ok := reply.(redis.Error); ok {
			if re := redisc.ParseRedir(rerr); re != nil {
				to := t.byID[m.self.migrating[re.NewSlot]]
				if re.Type != "ASK" || to == nil || to.addr != re.Addr || p.asking {
					return fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, p.key, m.addr, rerr)
				}
				asked[to] = append(asked[to], pending{key: p.key, tenant: p.tenant, asking: true})
				continue
			}
		}
		if err := decodeInto(reply, p, r); err != nil {
			return fmt.Errorf("HGETALL %q: %w", p.key, err)
		}
	}
	for to, ps := range asked {
		if err := c.readAsked(ctx, to, ps, r); err != nil {
			return err
		}
	}
	return nil
}

// readAsked reads keys that moved to the node importing their slot.
func (c *Cluster) readAsked(ctx context.Context, to *master, batch []pending, r *usage.Snapshot) error {
	conn, err := c.conn(ctx, to.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	replies, err := c.pipelineHGETALL(ctx, conn, batch)
	if err != nil {
		return fmt.Errorf("redis node %s: %w", to.addr, err)
	}
	for i, reply := range replies {
		if rerr, ok := reply.(redis.Error); ok && redisc.ParseRedir(rerr) != nil {
			return fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, batch[i].key, to.addr, rerr)
		}
		if err := decodeInto(reply, batch[i], r); err != nil {
			return fmt.Errorf("redis node %s: HGETALL %q: %w", to.addr, batch[i].key, err)
		}
	}
	return nil
}

// ReadTenant reads one usage hash from the master that serves the key's
// slot, following MOVED and ASK redirections.
func (c *Cluster) ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error) {
	slot := redisc.Slot(key)
	c.mu.Lock()
	addr := c.owners[slot]
	c.mu.Unlock()
	if addr == "" {
		if addr, err = c.refreshOwner(ctx, slot); err != nil {
			return nil, false, nil, err
		}
	}
	asking := false
	for attempt := 0; attempt < 5; attempt++ {
		reply, err := c.hgetallOne(ctx, addr, key, asking)
		if err != nil {
			return nil, false, nil, err
		}
		if rerr, ok := reply.(redis.Error); ok {
			if re := redisc.ParseRedir(rerr); re != nil {
				addr, asking = re.Addr, re.Type == "ASK"
				if !asking {
					c.mu.Lock()
					c.owners[re.NewSlot] = re.Addr
					c.mu.Unlock()
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
		counters, found, err = decodeHGETALL(reply, skipped)
		if err != nil {
			return nil, false, nil, fmt.Errorf("redis node %s: HGETALL: %w", addr, err)
		}
		return counters, found, skipped, nil
	}
	return nil, false, nil, fmt.Errorf("HGETALL %q: too many cluster redirections", key)
}

// refreshOwner learns the slot layout from one node's view.
func (c *Cluster) refreshOwner(ctx context.Context, slot int) (string, error) {
	lines, _, err := c.view(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.masters = masterAddrs(lines)
	for _, n := range lines {
		if !n.has("master") || n.addr == "" {
			continue
		}
		for _, r := range n.claims {
			for s := r[0]; s <= r[1]; s++ {
				c.owners[s] = n.addr
			}
		}
	}
	if c.owners[slot] == "" {
		return "", fmt.Errorf("redis cluster: slot %d is served by no master", slot)
	}
	return c.owners[slot], nil
}

func (c *Cluster) hgetallOne(ctx context.Context, addr, key string, asking bool) (_ any, err error) {
	ctx, rt := startRoundTrips(ctx, "HGETALL", addr)
	defer func() { rt.end(err) }()
	rt.calls, rt.keys = 1, 1
	conn, err := c.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	replies, err := c.pipelineHGETALL(ctx, conn, []pending{{key: key, asking: asking}})
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	return replies[0], nil
}
