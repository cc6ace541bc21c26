package mirror

import (
	"context"
	"fmt"
	"maps"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// resync replaces the state with a paced full read and counts the keys
// that differed, but those invalidated meanwhile.
func (n *nodeMirror) resync(ctx context.Context) (int, error) {
	m := n.m
	m.mu.Lock()
	if n.state == nil || n.pair == nil {
		m.mu.Unlock()
		return -1, nil
	}
	pair, periodID, hint := n.pair, n.state.periodID, n.state.tenants.Len()
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
	n.install(fresh, reasonResync)
	if d > 0 {
		n.logger.Warn("Redis usage mirror differed from a full read: replaced", "divergent_keys", d, "example_key", fmt.Sprintf("%q", example))
	}
	return d, nil
}

// divergence counts the keys a and b hold differently, but skip.
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
	for _, ab := range [][2]*state{{a, b}, {b, a}} {
		for id, pid := range ab[0].otherKeys() {
			if !ab[1].hasOther(id, pid) {
				diff(pattern.Key(id, pid))
			}
		}
		for key := range ab[0].malformed {
			if _, ok := ab[1].malformed[key]; !ok {
				diff(key)
			}
		}
	}
	for id, e := range a.tenants.all() {
		ca, cb := e.counters, b.tenants.get(id).counters
		if ca != nil && (cb == nil || !ca.Equal(cb) || !maps.Equal(a.flawed[id], b.flawed[id])) {
			diff(pattern.Key(id, a.periodID))
		}
	}
	for id, e := range b.tenants.all() {
		if e.counters != nil && a.tenants.get(id).counters == nil {
			diff(pattern.Key(id, b.periodID))
		}
	}
	return n, example
}
