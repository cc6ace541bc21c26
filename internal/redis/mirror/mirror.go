// Package mirror keeps the usage state in memory, current with Redis key
// tracking. See ARCHITECTURE.md.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Read modes of --redis.read-mode.
const (
	ModeTrack = "track"
	ModeScan  = "scan"
)

// Mirror reads usage from a copy per master, checking the layout before
// and after; while slots move or tracking is refused, a read is full.
type Mirror struct {
	billing.Store              // full reads and the other calls
	r             *read.Reader // nil: scan mode for good
	pattern       usage.KeyPattern
	logger        *slog.Logger
	resync        time.Duration

	mu    sync.Mutex // one read at a time, in order
	fp    string     // the layout of nodes
	nodes []*nodeMirror

	scanReason                atomic.Pointer[string]
	retryAt                   atomic.Int64 // UnixNano; 0: never
	loggedFallBack            string       // under mu
	invalidated, rereadTotal  atomic.Uint64
	rereadLast, divergentLast atomic.Int64
	seededAt                  atomic.Int64 // the oldest node's, or 0
	lastSeq                   uint64       // under mu: the last snapshot's, 0 after a full read
	fullReads                 map[string]*atomic.Uint64

	stop context.CancelFunc
	done chan struct{}
}

// Option configures a Mirror.
type Option func(*Mirror)

// WithResyncInterval sets how often a full read replaces the mirror; 0: never.
func WithResyncInterval(d time.Duration) Option { return func(m *Mirror) { m.resync = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Mirror) { m.logger = l } }

const scanRequested = "--redis.read-mode=scan"

// now is the clock; tests replace it.
var now = time.Now

// trackingRetry spaces the retries of a denied tracking.
const trackingRetry = time.Minute

// WithScanMode makes every read a full read.
func WithScanMode() Option {
	return func(m *Mirror) { r := scanRequested; m.scanReason.Store(&r) }
}

// New returns a Mirror over r for pattern; tracking needs a *read.Reader.
func New(r billing.Store, pattern usage.KeyPattern, opts ...Option) *Mirror {
	m := &Mirror{
		Store:     r,
		pattern:   pattern,
		logger:    slog.New(slog.DiscardHandler),
		resync:    15 * time.Minute,
		done:      make(chan struct{}),
		fullReads: map[string]*atomic.Uint64{},
	}
	for _, reason := range fullReadReasons {
		m.fullReads[reason] = new(atomic.Uint64)
	}
	for _, o := range opts {
		o(m)
	}
	m.r, _ = r.(*read.Reader)
	switch {
	case m.r == nil:
		m.fallBack(fmt.Sprintf("key tracking needs a single Redis server or a cluster, not a %T", r), false)
	case pattern.LiteralPrefix() == "":
		m.fallBack("the usage key pattern starts with a placeholder: no literal prefix to track", false)
	}
	var ctx context.Context
	ctx, m.stop = context.WithCancel(context.Background())
	go m.resyncLoop(ctx)
	return m
}

// fallBack makes reads full reads, for good or until a retry.
func (m *Mirror) fallBack(reason string, retry bool) {
	at := int64(0)
	if retry {
		at = now().Add(trackingRetry).UnixNano()
	}
	m.retryAt.Store(at)
	if m.scanReason.CompareAndSwap(nil, &reason) && reason != m.loggedFallBack {
		m.loggedFallBack = reason
		m.logger.Warn("Redis key tracking unavailable: reading the whole usage state on every scrape (scan mode)", "reason", reason, "retried", retry)
	}
}

// tracking reports whether reads use the mirror.
func (m *Mirror) tracking() bool {
	r := m.scanReason.Load()
	if r == nil {
		return true
	}
	at := m.retryAt.Load()
	return at != 0 && now().UnixNano() >= at && m.scanReason.CompareAndSwap(r, nil)
}

// denied reports a refusal that credentials or ACL grants lift.
func denied(err error) bool {
	e, ok := errors.AsType[redis.Error](err)
	if !ok {
		return false
	}
	prefix, _, _ := strings.Cut(string(e), " ")
	return prefix == "NOAUTH" || prefix == "WRONGPASS" || prefix == "NOPERM"
}

func (m *Mirror) mode() string {
	if m.scanReason.Load() != nil {
		return ModeScan
	}
	return ModeTrack
}

// Close stops the self-check and the tracking connections.
func (m *Mirror) Close() error {
	m.stop()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drop()
	return nil
}

// ReadUsage returns the usage state of periodID.
func (m *Mirror) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	if pattern != m.pattern || !m.tracking() {
		return m.Store.ReadUsage(ctx, pattern, periodID)
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
		if !stable {
			m.count(reasonTopology)
			return m.r.ReadUsage(ctx, m.pattern, periodID)
		}
		for _, node := range t.Nodes() {
			n := &nodeMirror{m: m, node: node, nextReason: reason, logger: m.logger}
			if node.Name != "" {
				n.logger = m.logger.With("node", node.Name)
			}
			m.nodes = append(m.nodes, n)
		}
		m.fp = fp
	}

	snaps := make([]*usage.Snapshot, len(m.nodes))
	var rereads atomic.Int64
	var seeded atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	for i, n := range m.nodes {
		g.Go(func() (err error) {
			var k int
			snaps[i], k, err = n.read(gctx, periodID)
			if k < 0 {
				seeded.Store(true)
			} else {
				rereads.Add(int64(k))
			}
			return err
		})
	}
	err = g.Wait()
	base := m.lastSeq
	m.lastSeq = 0
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
			m.fallBack(err.Error(), denied(err))
		case errors.Is(err, read.ErrTopologyChanged):
			m.count(reasonTopology)
		default:
			return nil, err
		}
		m.drop()
		return m.r.ReadUsage(ctx, m.pattern, periodID)
	}
	if m.loggedFallBack != "" {
		m.logger.Info("Redis key tracking works again")
		m.loggedFallBack = ""
	}
	m.rereadLast.Store(rereads.Load())
	m.rereadTotal.Add(uint64(rereads.Load()))
	snap := read.Merge(periodID, snaps)
	snap.Seq = usage.NextSeq()
	m.lastSeq = snap.Seq
	if !seeded.Load() {
		snap.Base = base
	}
	return snap, nil
}

func (m *Mirror) drop() {
	for _, n := range m.nodes {
		n.dropPair(reasonStart)
	}
	m.nodes, m.fp, m.lastSeq = nil, "", 0
}

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

func (m *Mirror) resyncLoop(stop context.Context) {
	defer close(m.done)
	if m.resync <= 0 || m.scanReason.Load() != nil {
		return
	}
	t := time.NewTicker(m.resync)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(stop, m.resync)
		_, err := m.selfCheck(ctx)
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

// selfCheck replaces every node mirror with a paced full read and returns
// the keys that differed, or -1.
func (m *Mirror) selfCheck(ctx context.Context) (int, error) {
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
