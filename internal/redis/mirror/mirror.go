// Package mirror keeps a copy of the usage state in memory, current with
// Redis key tracking, so that a read re-reads only the keys changed since
// the last one. See ARCHITECTURE.md.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Read modes of --redis.read-mode.
const (
	ModeTrack = "track" // a mirror kept current by key tracking
	ModeScan  = "scan"  // a full read on every read
)

// Mirror reads usage from a copy per master (a single server is one),
// each seeded by a full read of its master and kept current by its own
// tracking pair (nodeMirror). The copies add up to the usage state only
// while every key stays on its master, so a read checks the layout before
// and after: a layout other than the copies were made for makes them anew;
// while a slot migrates, and when the layout changed during the read, the
// read is a full read of the Reader.
//
// Where tracking is impossible or refused, the Mirror says so once and
// every read is a full read (scan mode). Info and ReadTenant always go to
// the store the Mirror wraps.
type Mirror struct {
	full    billing.Store
	r       *read.Reader // nil: scan mode for good
	pattern usage.KeyPattern
	logger  *slog.Logger
	resync  time.Duration
	now     func() time.Time

	mu    sync.Mutex // one read, or resync swap, at a time
	fp    string     // layout the node mirrors were made for
	nodes []*nodeMirror

	scanReason atomic.Pointer[string] // set once: why reads are full reads
	stats

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// stats are what the Mirror exports (metrics.go).
type stats struct {
	invalidated, rereadTotal  atomic.Uint64
	rereadLast, divergentLast atomic.Int64
	seededAt                  atomic.Int64 // UnixNano of the oldest node's full read; 0: none
	fullReads                 map[string]*atomic.Uint64
}

// Option configures a Mirror.
type Option func(*Mirror)

// WithResyncInterval sets how often a background full read checks the
// mirror and replaces it; 0 turns the check off.
func WithResyncInterval(d time.Duration) Option { return func(m *Mirror) { m.resync = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Mirror) { m.logger = l } }

const scanRequested = "--redis.read-mode=scan"

// WithScanMode makes every read a full read.
func WithScanMode() Option {
	return func(m *Mirror) { r := scanRequested; m.scanReason.Store(&r) }
}

// New returns a Mirror over r for pattern; tracking needs r to be a
// *read.Reader. The first read seeds it.
func New(r billing.Store, pattern usage.KeyPattern, opts ...Option) *Mirror {
	m := &Mirror{
		full:    r,
		pattern: pattern,
		logger:  slog.New(slog.DiscardHandler),
		resync:  15 * time.Minute,
		now:     time.Now,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	m.fullReads = map[string]*atomic.Uint64{}
	for _, reason := range fullReadReasons {
		m.fullReads[reason] = new(atomic.Uint64)
	}
	for _, o := range opts {
		o(m)
	}
	m.r, _ = r.(*read.Reader)
	switch {
	case m.r == nil:
		m.fallBack(fmt.Sprintf("key tracking needs a single Redis server or a cluster, not a %T", r))
	case pattern.LiteralPrefix() == "":
		m.fallBack("the usage key pattern starts with a placeholder: no literal prefix to track")
	}
	if m.resync > 0 && m.scanReason.Load() == nil {
		go m.resyncLoop()
	} else {
		close(m.done)
	}
	return m
}

// fallBack switches to scan mode for good, saying why once.
func (m *Mirror) fallBack(reason string) {
	if m.scanReason.CompareAndSwap(nil, &reason) {
		m.logger.Warn("Redis key tracking unavailable: reading the whole usage state on every scrape (scan mode)", "reason", reason)
	}
}

// Mode returns the read mode in force.
func (m *Mirror) Mode() string {
	if m.scanReason.Load() != nil {
		return ModeScan
	}
	return ModeTrack
}

// Close stops the self-check and closes the tracking connections.
func (m *Mirror) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drop()
	return nil
}

// Info reads INFO from the store the Mirror wraps.
func (m *Mirror) Info(ctx context.Context) billing.Info { return m.full.Info(ctx) }

// ReadTenant reads one usage hash directly: one round trip, and no lock
// shared with scrapes.
func (m *Mirror) ReadTenant(ctx context.Context, key string) (usage.Counters, bool, map[usage.Reason]int, error) {
	return m.full.ReadTenant(ctx, key)
}

// ReadUsage returns the usage state of periodID from the node mirrors, each
// brought current by a barrier and a re-read of the keys changed since the
// last read, or seeded anew by a full read of its node.
func (m *Mirror) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	if m.scanReason.Load() != nil || pattern != m.pattern {
		return m.full.ReadUsage(ctx, pattern, periodID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.setAge()
	t, err := m.r.Topology(ctx)
	if err != nil {
		return nil, err
	}
	if fp, stable := t.Fingerprint(); fp != m.fp || !stable {
		reason := reasonStart
		if m.fp != "" {
			reason = reasonTopology
			m.logger.Info("Redis Cluster layout changed: the per-master mirrors are made anew", "stable", stable)
		}
		m.drop()
		if !stable { // only a full read that follows the moving slots is exact
			m.count(reasonTopology)
			return m.r.ReadUsage(ctx, m.pattern, periodID)
		}
		for _, node := range t.Nodes() {
			m.nodes = append(m.nodes, &nodeMirror{m: m, node: node, nextReason: reason, logger: m.logger.With("node", node.Name)})
		}
		m.fp = fp
	}

	snaps := make([]*usage.Snapshot, len(m.nodes))
	rereads := make([]int, len(m.nodes))
	g, gctx := errgroup.WithContext(ctx)
	for i, n := range m.nodes {
		g.Go(func() (err error) {
			snaps[i], rereads[i], err = n.read(gctx, periodID)
			return err
		})
	}
	err = g.Wait()
	if err == nil {
		err = m.r.Verify(ctx, t)
	}
	if err != nil {
		for _, s := range snaps {
			if s != nil {
				s.Release()
			}
		}
		switch {
		case errors.Is(err, errTrackingRefused):
			m.fallBack(err.Error())
		case errors.Is(err, read.ErrTopologyChanged):
			m.count(reasonTopology)
		default:
			return nil, err
		}
		m.drop()
		return m.r.ReadUsage(ctx, m.pattern, periodID)
	}
	total := 0
	for _, n := range rereads {
		total += n
	}
	m.rereadLast.Store(int64(total))
	m.rereadTotal.Add(uint64(total))
	return read.Merge(periodID, snaps), nil
}

// drop closes the node mirrors. Under m.mu.
func (m *Mirror) drop() {
	for _, n := range m.nodes {
		n.dropPair(reasonStart)
	}
	m.nodes, m.fp = nil, ""
}

// setAge sets the mirror's age from its oldest node's. Under m.mu.
func (m *Mirror) setAge() {
	var oldest int64
	for i, n := range m.nodes {
		if i == 0 || n.seededAt < oldest {
			oldest = n.seededAt
		}
	}
	m.seededAt.Store(oldest)
}

func (m *Mirror) count(reason string) { m.fullReads[reason].Add(1) }

// resyncLoop runs the self-check every m.resync until Close, logging its
// errors when they change.
func (m *Mirror) resyncLoop() {
	defer close(m.done)
	t := time.NewTicker(m.resync)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.resync) // a paced read takes about twice an unpaced one
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
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

// Resync checks every node mirror against a paced full read done while
// scrapes go on, and replaces it with that read. It returns how many keys
// differed (billing_redis_mirror_divergent_keys); -1 when there was no
// mirror to check.
func (m *Mirror) Resync(ctx context.Context) (int, error) {
	if m.scanReason.Load() != nil {
		return -1, nil
	}
	m.mu.Lock()
	nodes := slices.Clone(m.nodes)
	m.mu.Unlock()
	total, checked := 0, false
	var firstErr error
	for _, n := range nodes {
		d, err := n.resync(ctx)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if d >= 0 {
			total += d
			checked = true
		}
	}
	m.mu.Lock()
	m.setAge()
	m.mu.Unlock()
	if !checked {
		return -1, firstErr
	}
	m.divergentLast.Store(int64(total))
	return total, firstErr
}
