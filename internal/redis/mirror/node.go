package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// nodeMirror is a copy of one master's keys and its tracking pair. A read
// proves it current and re-reads the changed keys, or seeds it anew.
// The Mirror's lock guards it.
type nodeMirror struct {
	m      *Mirror
	node   read.Node
	logger *slog.Logger

	pair         *trackingPair
	state        *state
	nextReason   string // why the next read must be full
	loggedReason string // an outage logs once
	seededAt     int64
	lastSize     int
}

// read returns the state and the keys re-read, or -1 after a full read.
func (n *nodeMirror) read(ctx context.Context, periodID string) (*usage.Snapshot, int, error) {
	reason := n.nextReason
	if reason == "" && n.state.periodID != periodID {
		reason = reasonPeriod
	}
	if reason == "" {
		r, err := n.pair.barrier(ctx, n.m.r.Settings(), n.node.Name)
		if err != nil && r == "" {
			return nil, -1, err
		}
		if err != nil {
			n.logger.Debug("tracking barrier failed", "err", err)
		}
		reason = r
	}
	if reason != "" {
		snap, err := n.seed(ctx, periodID, reason)
		return snap, -1, err
	}
	keys := n.pair.take()
	if err := n.reread(ctx, n.state, keys); err != nil {
		n.dropPair(reasonReadError)
		return nil, -1, err
	}
	return n.state.snapshot(), len(keys), nil
}

func (n *nodeMirror) dropPair(reason string) {
	if n.pair != nil {
		n.pair.close()
		n.pair = nil
	}
	n.state, n.seededAt, n.nextReason = nil, 0, reason
}

// seed makes a new state with a full read.
func (n *nodeMirror) seed(ctx context.Context, periodID, reason string) (*usage.Snapshot, error) {
	if reason != reasonStart && reason != reasonPeriod && reason != n.loggedReason {
		n.logger.Info("Redis usage mirror cannot be proven current: full read (logged again when the reason changes or a full read works)", "reason", reason)
		n.loggedReason = reason
	}
	if n.pair != nil && n.pair.lostReason() != "" {
		n.dropPair(reason)
	}
	n.state, n.seededAt, n.nextReason = nil, 0, reason
	if n.pair == nil {
		p, err := openTracking(ctx, n.m.r.Settings(), n.node.Addr, n.m.pattern.LiteralPrefix(), &n.m.invalidated)
		if errors.Is(err, errTrackingRefused) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("redis key tracking: %w", err)
		}
		n.pair = p
	}
	// A change from now on is in the dirty set, any before in the read.
	n.pair.take()
	st, err := n.fullRead(ctx, periodID, n.lastSize, false)
	// Idle connections may have died with the tracking ones.
	for try := 0; err != nil && ctx.Err() == nil && reason == reasonConnectionLost && try < conn.MaxIdle; try++ {
		st, err = n.fullRead(ctx, periodID, n.lastSize, false)
	}
	if err != nil {
		n.dropPair(reason)
		return nil, err
	}
	n.install(st, reason)
	return st.snapshot(), nil
}

func (n *nodeMirror) install(st *state, reason string) {
	st.changed, st.installed = nil, true
	n.state, n.nextReason, n.loggedReason = st, "", ""
	n.seededAt = now().UnixNano()
	n.lastSize = st.tenants.Len()
	n.m.count(reason)
}

func (n *nodeMirror) fullRead(ctx context.Context, periodID string, hint int, paced bool) (*state, error) {
	st := newState(periodID, hint)
	if err := n.m.r.ReadNode(ctx, n.node, n.m.pattern, periodID, &seedSink{st: st, pattern: n.m.pattern}, paced); err != nil {
		return nil, err
	}
	return st, nil
}

func (n *nodeMirror) reread(ctx context.Context, st *state, keys map[string]struct{}) error {
	var ks []read.Key
	for key := range keys {
		if !n.m.pattern.MatchesGlob(key) {
			continue
		}
		// Another period's key, or a malformed one, counts by its existence.
		tenant, pid, err := n.m.pattern.Parse(key)
		ks = append(ks, read.Key{Name: key, Tenant: tenant, Exists: err != nil || pid != st.periodID})
	}
	return n.m.r.ReadKeys(ctx, n.node, ks, &seedSink{st: st, pattern: n.m.pattern})
}
