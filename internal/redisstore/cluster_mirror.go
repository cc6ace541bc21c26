package redisstore

import (
	"context"
	"errors"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// clusterMirror is a Mirror's Redis Cluster side: one mirror, with its own
// tracking pair, per master, each over that master's own keys (SCAN and
// tracking are per node). Their union is the cluster's usage state only
// while every key stays on the master it was read from, so a read checks
// the slot layout before and after reading the per-master mirrors:
//
//   - the layout differs from the one the mirrors were made for (a slot
//     moved, a failover, a master added or removed): they are thrown away
//     and made anew, each seeded by a full read of its master;
//   - a slot is being migrated: the read is the cluster's full read (which
//     follows ASK and reads again when the layout moves under it), until
//     the layout is still again;
//   - the layout changed during the read: the result is dropped for a full
//     read of the cluster.
//
// It is used under the parent Mirror's lock.
type clusterMirror struct {
	c      *Cluster
	parent *Mirror
	fp     string    // layout the node mirrors were made for; "" when none
	nodes  []*Mirror // one per master
}

// layoutFingerprint identifies the layout: each master's identity, role,
// epoch, slots and migrations. stable is false while a slot migrates.
func layoutFingerprint(t *topology) (fp string, stable bool) {
	var b strings.Builder
	stable = true
	for _, m := range t.masters {
		b.WriteString(m.fingerprint())
		b.WriteByte('\n')
		if len(m.self.migrating) > 0 || len(m.self.importing) > 0 {
			stable = false
		}
	}
	return b.String(), stable
}

// drop closes the per-master mirrors.
func (cm *clusterMirror) drop() {
	for _, n := range cm.nodes {
		n.Close()
	}
	cm.nodes, cm.fp = nil, ""
	cm.parent.seededAt.Store(0)
}

// build makes a mirror per master of t; each seeds itself on its first
// read, counted under reason.
func (cm *clusterMirror) build(t *topology, fp, reason string) error {
	m := cm.parent
	for _, ms := range t.masters {
		pool, err := cm.c.pool(ms.addr)
		if err != nil {
			cm.drop()
			return err
		}
		st := &Store{settings: cm.c.settings, pool: pool}
		st.target.Address = ms.addr
		child := NewMirror(st, m.pattern, WithResyncInterval(0), WithMirrorLogger(m.logger.With("node", ms.addr)),
			withStats(m.mirrorStats), withMirrorClock(m.now))
		child.nextReason = reason
		child.node = ms.addr
		cm.nodes = append(cm.nodes, child)
	}
	cm.fp = fp
	return nil
}

// read returns the cluster's usage state (see clusterMirror).
func (cm *clusterMirror) read(ctx context.Context, periodID string) (*usage.Snapshot, error) {
	m := cm.parent
	t, err := cm.c.discover(ctx)
	if err != nil {
		return nil, err
	}
	fp, stable := layoutFingerprint(t)
	if fp != cm.fp || !stable {
		reason := reasonStart
		if cm.fp != "" || m.seededAt.Load() != 0 || cm.nodes != nil {
			reason = reasonTopology
			m.logger.Info("Redis Cluster layout changed: the per-master mirrors are made anew", "stable", stable)
		}
		cm.drop()
		if !stable {
			// Slots are moving: only a full read that follows them is
			// exact, until they are still again.
			m.countFullRead(reasonTopology)
			return cm.c.ReadUsage(ctx, m.pattern, periodID)
		}
		if err := cm.build(t, fp, reason); err != nil {
			return nil, err
		}
	}

	before := m.rereadTotal.Load()
	snaps := make([]*usage.Snapshot, len(cm.nodes))
	err = parallel(ctx, len(cm.nodes), func(ctx context.Context, i int) error {
		var err error
		snaps[i], err = cm.nodes[i].ReadUsage(ctx, m.pattern, periodID)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, n := range cm.nodes {
		if r := n.scanReason.Load(); r != nil {
			// A master refused tracking (an ACL): read the cluster in
			// scan mode, as a single server would be.
			m.fallBack(*r)
			cm.drop()
			return cm.c.ReadUsage(ctx, m.pattern, periodID)
		}
	}
	if err := cm.c.verify(ctx, t); err != nil {
		cm.drop()
		if !errors.Is(err, ErrTopologyChanged) {
			return nil, err
		}
		m.countFullRead(reasonTopology)
		return cm.c.ReadUsage(ctx, m.pattern, periodID)
	}
	m.rereadLast.Store(int64(m.rereadTotal.Load() - before))
	if m.seededAt.Load() == 0 {
		m.seededAt.Store(m.now().UnixNano())
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
		for r, n := range s.Skipped {
			out.Skipped[r] += n
		}
		s.Release() // copied: the master's mirror may change its map in place
	}
	return out, nil
}

// resync runs the self-check of every master's mirror and returns the sum
// of what they found.
func (cm *clusterMirror) resync(ctx context.Context) (int, error) {
	m := cm.parent
	m.mu.Lock()
	nodes := append([]*Mirror(nil), cm.nodes...)
	m.mu.Unlock()
	if len(nodes) == 0 {
		return -1, nil
	}
	total, checked := 0, false
	var firstErr error
	for _, n := range nodes {
		d, err := n.Resync(ctx)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if d >= 0 {
			total += d
			checked = true
		}
	}
	if !checked {
		return -1, firstErr
	}
	m.divergentLast.Store(int64(total))
	return total, firstErr
}
