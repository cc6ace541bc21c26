package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// resyncLoop runs the self-check every m.resync until Close.
func (m *Mirror) resyncLoop() {
	defer close(m.done)
	t := time.NewTicker(m.resync)
	defer t.Stop()
	var lastErr string // the self-check's last error logged, "" while it works
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		// Generous: a paced full read takes about twice an unpaced one.
		ctx, cancel := context.WithTimeout(context.Background(), m.resync)
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		// Logged on change: an outage is one line, not one per interval.
		_, err := m.Resync(ctx)
		switch {
		case err != nil && err.Error() != lastErr:
			m.logger.Warn("Redis usage mirror self-check failed (logged again when the error changes or it works)", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			m.logger.Info("Redis usage mirror self-check works again")
			lastErr = ""
		}
		cancel()
	}
}

// Resync checks the mirror against a paced full read done while scrapes go
// on, and replaces it with that read. Keys invalidated while the full read
// ran are left out of the comparison (either side may hold the newer
// value) and read again before the new mirror is used. It returns how
// many keys differed, also exported as billing_redis_mirror_divergent_keys;
// -1 when there was no mirror to check (the next scrape seeds one).
func (m *Mirror) Resync(ctx context.Context) (int, error) {
	if m.scanReason.Load() != nil {
		return -1, nil
	}
	if m.cluster != nil {
		return m.cluster.resync(ctx)
	}
	m.mu.Lock()
	if m.state == nil || m.pair == nil {
		m.mu.Unlock()
		return -1, nil
	}
	pair, periodID, hint := m.pair, m.state.periodID, len(m.state.tenants)
	pair.startTouch()
	m.mu.Unlock()
	defer pair.stopTouch()

	fresh, err := m.fullRead(ctx, periodID, hint, true)
	if err != nil {
		return -1, fmt.Errorf("full read: %w", err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pair != pair || m.state == nil || m.state.periodID != periodID {
		return -1, nil // the mirror was seeded anew meanwhile
	}
	reason, err := pair.barrier(ctx, &m.store.settings, m.node)
	if reason != "" {
		m.nextReason = reason
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	// Both sides brought current as of the barrier: the mirror with the
	// keys invalidated since the last scrape, the full read with those
	// invalidated while it ran.
	touched := pair.stopTouch()
	dirty := pair.take()
	if err := m.reread(ctx, m.state, dirty); err != nil {
		m.dropPair(reasonReadError)
		return -1, err
	}
	n, example := divergence(m.state, fresh, touched, m.pattern)
	if err := m.reread(ctx, fresh, touched); err != nil {
		m.dropPair(reasonReadError)
		return -1, err
	}
	m.state = fresh
	m.seededAt.Store(m.now().UnixNano())
	m.lastSize.Store(int64(len(fresh.tenants)))
	m.countFullRead(reasonResync)
	m.divergentLast.Store(int64(n))
	if n > 0 {
		m.logger.Warn("Redis usage mirror differed from a full read: replaced", "divergent_keys", n, "example_key", fmt.Sprintf("%q", example))
	}
	return n, nil
}

// divergence counts the keys that a and b hold differently, leaving out
// skip, and returns one of them; the period's keys are named with pattern.
func divergence(a, b *mirrorState, skip map[string]struct{}, pattern usage.KeyPattern) (int, string) {
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
