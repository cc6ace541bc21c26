package mirror

import (
	"context"
	"fmt"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// resync checks the node's state against a paced full read done while
// scrapes go on, and replaces it with that read. Keys invalidated while the
// full read ran are left out of the comparison (either side may hold the
// newer value) and read again before the new state is used. It returns how
// many keys differed; -1 when there was no state to check.
func (n *nodeMirror) resync(ctx context.Context) (int, error) {
	m := n.m
	m.mu.Lock()
	if n.state == nil || n.pair == nil {
		m.mu.Unlock()
		return -1, nil
	}
	pair, periodID, hint := n.pair, n.state.periodID, len(n.state.tenants)
	pair.startTouch()
	m.mu.Unlock()
	defer pair.stopTouch()

	fresh, err := n.fullRead(ctx, periodID, hint, true)
	if err != nil {
		return -1, fmt.Errorf("full read: %w", err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if n.pair != pair || n.state == nil || n.state.periodID != periodID {
		return -1, nil // seeded anew meanwhile
	}
	reason, err := pair.barrier(ctx, m.r.Settings(), n.node.Name)
	if reason != "" {
		n.nextReason = reason
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	// Both sides brought current as of the barrier: the state with the
	// keys invalidated since the last read, the full read with those
	// invalidated while it ran.
	touched := pair.stopTouch()
	if err := n.reread(ctx, n.state, pair.take()); err != nil {
		n.dropPair(reasonReadError)
		return -1, err
	}
	d, example := divergence(n.state, fresh, touched, m.pattern)
	if err := n.reread(ctx, fresh, touched); err != nil {
		n.dropPair(reasonReadError)
		return -1, err
	}
	n.state = fresh
	n.seededAt = m.now().UnixNano()
	n.lastSize = len(fresh.tenants)
	m.count(reasonResync)
	if d > 0 {
		n.logger.Warn("Redis usage mirror differed from a full read: replaced", "divergent_keys", d, "example_key", fmt.Sprintf("%q", example))
	}
	return d, nil
}

// divergence counts the keys that a and b hold differently, leaving out
// skip, and returns one of them; the period's keys are named with pattern.
func divergence(a, b *state, skip map[string]struct{}, pattern usage.KeyPattern) (int, string) {
	n, example := 0, ""
	diff := func(key string) {
		if _, ok := skip[key]; ok {
			return
		}
		if n == 0 || key < example {
			example = key
		}
		n++
	}
	for k := range a.others.All() {
		if !b.others.Has(k) {
			diff(k)
		}
	}
	for k := range b.others.All() {
		if !a.others.Has(k) {
			diff(k)
		}
	}
	for k := range a.malformed {
		if _, ok := b.malformed[k]; !ok {
			diff(k)
		}
	}
	for k := range b.malformed {
		if _, ok := a.malformed[k]; !ok {
			diff(k)
		}
	}
	for id, ca := range a.tenants {
		if cb, ok := b.tenants[id]; !ok || !ca.Equal(cb) || a.flawed[id] != b.flawed[id] {
			diff(pattern.Key(id, a.periodID))
		}
	}
	for id := range b.tenants {
		if _, ok := a.tenants[id]; !ok {
			diff(pattern.Key(id, b.periodID))
		}
	}
	return n, example
}
