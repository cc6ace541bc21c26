package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.opentelemetry.io/otel/attribute"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Read modes of --redis.read-mode.
const (
	// ModeTrack keeps a mirror of the usage state current with Redis key
	// tracking: a read re-reads only the keys changed since the last one.
	ModeTrack = "track"
	// ModeScan reads the whole usage state on every read.
	ModeScan = "scan"
)

// FullReader is what a Mirror falls back to: a complete read per call
// (Store, Cluster). INFO always goes to it.
type FullReader = billing.Store

// Mirror reads usage from a copy of the usage state kept in memory, seeded
// by one full read and kept current by Redis' server-assisted client-side
// caching in broadcast mode (see trackingPair). A read proves the copy
// current with a barrier, re-reads only the keys Redis said changed, and
// returns the same Snapshot a full read would. Whenever the copy cannot be
// proven current (a tracking connection lost, Redis restarted, a flush,
// the period rolled over, a read failed part-way) the read is a full read
// that seeds a new copy.
//
// Where Redis refuses tracking (Redis < 6, an ACL without the commands, a
// key pattern without a literal prefix) the Mirror says so once in the log
// and in billing_redis_tracking_unavailable, and every read is a full read
// of the reader it wraps, as in scan mode. Over a Redis Cluster it keeps a
// mirror per master (see clusterMirror).
//
// ReadTenant (the API's one-tenant read) stays a direct HGETALL: it is one
// round trip either way (a mirror read costs a barrier of two), and it
// needs no lock shared with scrapes.
type Mirror struct {
	scan    FullReader
	store   *Store // nil when tracking is impossible (a cluster)
	pattern usage.KeyPattern
	logger  *slog.Logger
	resync  time.Duration
	now     func() time.Time

	mu         sync.Mutex // one read (or resync swap) at a time
	pair       *trackingPair
	state      *mirrorState
	nextReason string // why the next read must be full, when the pair is gone
	// loggedReason is the reason last logged for a full read, "" once a
	// full read worked: while Redis is down every scrape retries the seed
	// with the same reason, and the log says so once, not per scrape.
	loggedReason string
	seededAt     atomic.Int64 // UnixNano of the full read the mirror comes from; 0 while there is none

	scanReason atomic.Pointer[string] // set once: why reads are full reads

	lastSize atomic.Int64 // current-period keys of the last full read, to size the next
	*mirrorStats
	cluster *clusterMirror // nil for a single server
	node    string         // a cluster master's host:port, named in spans; "" for a single server

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// mirrorStats are the counters a Mirror exports; the per-master mirrors of
// a cluster share their parent's.
type mirrorStats struct {
	invalidated   atomic.Uint64
	rereadLast    atomic.Int64
	rereadTotal   atomic.Uint64
	divergentLast atomic.Int64
	fullReads     sync.Map // reason → *atomic.Uint64
}

func newMirrorStats() *mirrorStats {
	st := &mirrorStats{}
	for _, reason := range fullReadReasons {
		st.fullReads.Store(reason, new(atomic.Uint64))
	}
	return st
}

// MirrorOption configures a Mirror.
type MirrorOption func(*Mirror)

// WithResyncInterval sets how often a background full read checks the
// mirror and replaces it; 0 turns the check off.
func WithResyncInterval(d time.Duration) MirrorOption { return func(m *Mirror) { m.resync = d } }

// WithMirrorLogger sets the logger.
func WithMirrorLogger(l *slog.Logger) MirrorOption { return func(m *Mirror) { m.logger = l } }

// scanRequested is the scan-mode reason of --redis.read-mode=scan.
const scanRequested = "--redis.read-mode=scan"

// WithScanMode makes every read a full read: --redis.read-mode=scan. The
// Mirror then only reports the mode.
func WithScanMode() MirrorOption {
	return func(m *Mirror) { r := scanRequested; m.scanReason.Store(&r) }
}

// withStats makes a mirror count into another's stats (a cluster's
// per-master mirrors).
func withStats(st *mirrorStats) MirrorOption { return func(m *Mirror) { m.mirrorStats = st } }

// withMirrorClock replaces time.Now for the mirror age, for tests.
func withMirrorClock(now func() time.Time) MirrorOption { return func(m *Mirror) { m.now = now } }

// NewMirror returns a Mirror over r for pattern. r is a *Store or a
// *Cluster for tracking to be possible; any other reader is read in scan
// mode, with the reason logged. The first read seeds the mirror.
func NewMirror(r FullReader, pattern usage.KeyPattern, opts ...MirrorOption) *Mirror {
	m := &Mirror{
		scan:       r,
		pattern:    pattern,
		logger:     slog.New(slog.DiscardHandler),
		resync:     15 * time.Minute,
		now:        time.Now,
		nextReason: reasonStart,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	if m.mirrorStats == nil {
		m.mirrorStats = newMirrorStats()
	}
	m.store, _ = r.(*Store)
	if c, ok := r.(*Cluster); ok {
		m.cluster = &clusterMirror{c: c, parent: m}
	}
	switch {
	case m.store == nil && m.cluster == nil:
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
		m.logger.Warn("Redis key tracking unavailable: reading the whole usage state on every scrape (scan mode)",
			"reason", reason)
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
	if m.cluster != nil {
		m.cluster.drop()
	}
	m.dropPair(reasonStart)
	return nil
}

// Info reads INFO from the reader the Mirror wraps: the mirror holds usage
// hashes only.
func (m *Mirror) Info(ctx context.Context) billing.Info { return m.scan.Info(ctx) }

// ReadTenant reads one usage hash directly (see Mirror).
func (m *Mirror) ReadTenant(ctx context.Context, key string) (usage.Counters, bool, map[usage.Reason]int, error) {
	return m.scan.ReadTenant(ctx, key)
}

// ReadUsage returns the usage state of periodID: from the mirror after a
// barrier and the re-read of the keys changed since the last read, or from
// a full read that seeds it anew.
func (m *Mirror) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	if m.scanReason.Load() != nil || pattern != m.pattern {
		return m.scan.ReadUsage(ctx, pattern, periodID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cluster != nil {
		return m.cluster.read(ctx, periodID)
	}

	reason := m.nextReason
	if reason == "" && m.state.periodID != periodID {
		reason = reasonPeriod
	}
	if reason == "" {
		r, err := m.pair.barrier(ctx, &m.store.settings, m.node)
		if err != nil && r == "" {
			return nil, err
		}
		if err != nil {
			m.logger.Debug("tracking barrier failed", "err", err)
		}
		reason = r
	}
	if reason != "" {
		return m.seed(ctx, periodID, reason)
	}
	keys := m.pair.take()
	if err := m.reread(ctx, m.state, keys); err != nil {
		m.dropPair(reasonReadError)
		return nil, err
	}
	m.rereadLast.Store(int64(len(keys)))
	m.rereadTotal.Add(uint64(len(keys)))
	return m.state.snapshot(), nil
}

// dropPair forgets the pair and the state; the next read is a full read for
// reason.
func (m *Mirror) dropPair(reason string) {
	if m.pair != nil {
		m.pair.close()
		m.pair = nil
	}
	m.state = nil
	m.seededAt.Store(0)
	m.nextReason = reason
}

// seed makes a new mirror with a full read, opening a new tracking pair
// first when the old one is lost. Under m.mu.
func (m *Mirror) seed(ctx context.Context, periodID, reason string) (*usage.Snapshot, error) {
	if reason != reasonStart && reason != reasonPeriod && reason != m.loggedReason {
		m.logger.Info("Redis usage mirror cannot be proven current: full read (logged again when the reason changes or a full read works)", "reason", reason)
		m.loggedReason = reason
	}
	if m.pair != nil && m.pair.lostReason() != "" {
		m.dropPair(reason)
	}
	m.state = nil
	m.seededAt.Store(0)
	m.nextReason = reason
	if m.pair == nil {
		p, err := m.store.openTracking(ctx, m.store.target.Address, m.pattern.LiteralPrefix(), &m.invalidated)
		if errors.Is(err, errTrackingRefused) {
			m.fallBack(err.Error())
			return m.scan.ReadUsage(ctx, m.pattern, periodID)
		}
		if err != nil {
			return nil, fmt.Errorf("redis key tracking: %w", err)
		}
		m.pair = p
	}
	// Tracking is on from here: a key changed from now on is in the dirty
	// set, and any change before is in what the full read sees. Keys
	// invalidated during the read are re-read by the next one.
	m.pair.take()
	st, err := m.fullRead(ctx, periodID, int(m.lastSize.Load()), false)
	// The pool's idle connections may have died with the tracking ones (a
	// restart) and be trusted for being recently used; each failed one is
	// gone after its failure, so a try per idle connection the pool may
	// hold reaches fresh ones.
	for try := 0; err != nil && ctx.Err() == nil && reason == reasonConnectionLost && try < maxIdle; try++ {
		st, err = m.fullRead(ctx, periodID, int(m.lastSize.Load()), false)
	}
	if err != nil {
		m.dropPair(reason)
		return nil, err
	}
	m.state, m.nextReason, m.loggedReason = st, "", ""
	m.seededAt.Store(m.now().UnixNano())
	m.lastSize.Store(int64(len(st.tenants)))
	m.countFullRead(reason)
	m.rereadLast.Store(0)
	return st.snapshot(), nil
}

func (m *Mirror) countFullRead(reason string) {
	if c, ok := m.fullReads.Load(reason); ok {
		c.(*atomic.Uint64).Add(1)
	}
}

// mirrorState is the mirror: every key the SCAN of a full read would
// return, sorted the way a full read counts it.
//
// A read hands out the state's own maps (tenants, types) in its snapshot
// rather than a copy: building a map of every tenant on every read was
// most of the cost of a read with few changes. A snapshot must never
// change while it is used, so a change while a snapshot holds the maps
// clones them first (copy-on-write). The snapshot is lent them
// (usage.Snapshot.Lend): once its user releases it (the join, as soon as
// it has taken each tenant's counters), the maps are the mirror's own
// again and the next change is made in place. A map of a million tenants
// is 70 MB: cloned on every read with a change, it was the largest
// allocation of such a read, and with the old copy still held by the last
// report, the largest addition to the exporter's peak memory.
type mirrorState struct {
	periodID string
	// tenants holds the counters of every usage key of the period, by
	// tenant, as a full read decodes them (unreadable markers included).
	// Counters are never modified: a changed hash gets new counters.
	tenants map[string]usage.Counters
	// types counts the tenants holding each field, kept as entries come
	// and go (usage.TypeCounts): the cap on metric types needs these
	// counts on every read, and counting them over every tenant cost as
	// much as the rest of a read with few changes.
	types usage.TypeCounts
	// lent counts the snapshots holding tenants and types (nil: none
	// ever did since they were made); while it is above 0 a change clones
	// both first. A snapshot's Release decrements it, from another
	// goroutine (the join): hence an atomic, read by put under the
	// mirror's lock.
	lent *atomic.Int32
	// flawed holds what was skipped in the hashes of the period that had
	// something skipped (few, if any), by tenant; the sums below are kept
	// from it.
	flawed    map[string]flaws
	others    *keySet             // usage keys of other periods
	malformed map[string]struct{} // keys that match the glob but do not parse
	// Sums over flawed, kept as entries come and go.
	wrongType, invalidField, invalidValue, oversized int
}

// flaws is what decoding one usage hash skipped.
type flaws struct {
	wrongType bool // the key holds another type than a hash
	// Fields skipped when decoding the hash.
	invalidField, invalidValue int
	oversized                  bool // the reply was over --redis.max-reply-bytes
}

// keyEntry is one usage key of the period as read.
type keyEntry struct {
	// counters as a full read decodes them, unreadable markers included
	// (a key of another type is found, with every metric type unreadable).
	counters usage.Counters
	flaws
}

func newMirrorState(periodID string, sizeHint int) *mirrorState {
	return &mirrorState{
		periodID:  periodID,
		tenants:   make(map[string]usage.Counters, sizeHint),
		types:     usage.TypeCounts{},
		flawed:    map[string]flaws{},
		others:    newKeySet(),
		malformed: map[string]struct{}{},
	}
}

// put records the entry of a tenant's key of the period, nil when the key
// no longer exists.
func (st *mirrorState) put(tenant string, e *keyEntry) {
	old, had := st.tenants[tenant]
	if !had && e == nil {
		return
	}
	if st.lent != nil && st.lent.Load() > 0 {
		st.tenants, st.types = maps.Clone(st.tenants), maps.Clone(st.types)
	}
	// Cloned, or back from every snapshot: none holds these maps, and a
	// snapshot that did and releases it late must not count against the
	// next lending.
	st.lent = nil
	if had {
		st.types.Add(old, -1)
		if f, ok := st.flawed[tenant]; ok {
			st.addFlaws(f, -1)
			delete(st.flawed, tenant)
		}
		if e == nil {
			delete(st.tenants, tenant)
			return
		}
	}
	if !had {
		tenant = strings.Clone(tenant) // not the whole key it may be a slice of
	}
	st.tenants[tenant] = e.counters
	st.types.Add(e.counters, 1)
	if e.flaws != (flaws{}) {
		st.flawed[tenant] = e.flaws
		st.addFlaws(e.flaws, 1)
	}
}

// addFlaws adds f, sign times, to the sums.
func (st *mirrorState) addFlaws(f flaws, sign int) {
	if f.wrongType {
		st.wrongType += sign
	}
	st.invalidField += sign * f.invalidField
	st.invalidValue += sign * f.invalidValue
	if f.oversized {
		st.oversized += sign
	}
}

// setMember adds or removes key from set.
func setMember(set map[string]struct{}, key string, exists bool) {
	if exists {
		set[key] = struct{}{}
	} else {
		delete(set, key)
	}
}

// snapshot renders the mirror as a full read would have returned it,
// sharing the mirror's maps (see mirrorState).
func (st *mirrorState) snapshot() *usage.Snapshot {
	snap := usage.NewSnapshot(st.periodID)
	snap.Tenants, snap.Types = st.tenants, st.types
	if st.lent == nil {
		st.lent = new(atomic.Int32)
	}
	lent := st.lent
	lent.Add(1)
	snap.Lend(func() { lent.Add(-1) }) // Release gives back once
	snap.Keys = len(st.tenants) + st.others.Len()
	for reason, n := range map[usage.Reason]int{
		usage.ReasonMalformedKey:  len(st.malformed),
		usage.ReasonWrongType:     st.wrongType,
		usage.ReasonInvalidField:  st.invalidField,
		usage.ReasonInvalidValue:  st.invalidValue,
		usage.ReasonOversizedHash: st.oversized,
	} {
		if n > 0 {
			snap.Skipped[reason] = n
		}
	}
	return snap
}

// keyKind sorts a key the way a full read would: not a usage key at all
// (ignored), malformed, of another period, or of the period (with its
// tenant).
type keyKind int

const (
	kindIgnored keyKind = iota
	kindMalformed
	kindOther
	kindCurrent
)

func (st *mirrorState) classify(pattern usage.KeyPattern, key string) (keyKind, string) {
	if !pattern.MatchesGlob(key) {
		return kindIgnored, ""
	}
	tenant, pid, err := pattern.Parse(key)
	switch {
	case err != nil:
		return kindMalformed, ""
	case pid != st.periodID:
		return kindOther, ""
	}
	return kindCurrent, tenant
}

// reread reads keys again and updates st: HGETALL for the period's keys,
// EXISTS for the others that a full read would count, in pipelined batches
// on up to hashReaders connections at once (as a full read's HGETALLs), so
// that a read of many changed keys overlaps Redis' work on one batch with
// the decoding of another. st is updated here only, one batch at a time.
func (m *Mirror) reread(ctx context.Context, st *mirrorState, keys map[string]struct{}) error {
	if len(keys) == 0 {
		return nil
	}
	var batches [][]rereadItem
	batch := make([]rereadItem, 0, min(len(keys), m.store.batchSize))
	for key := range keys {
		kind, tenant := st.classify(m.pattern, key)
		if kind == kindIgnored {
			continue
		}
		batch = append(batch, rereadItem{key: key, tenant: tenant, kind: kind})
		if len(batch) >= m.store.batchSize {
			batches = append(batches, batch)
			batch = make([]rereadItem, 0, min(len(keys), m.store.batchSize))
		}
	}
	if len(batch) > 0 {
		batches = append(batches, batch)
	}
	if len(batches) == 0 {
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan []rereadItem)
	out := make(chan []rereadItem)
	errc := make(chan error, hashReaders)
	var wg sync.WaitGroup
	for range min(hashReaders, len(batches)) {
		wg.Go(func() {
			if err := m.rereadBatches(ctx, in, out); err != nil {
				errc <- err
				cancel()
			}
		})
	}
	go func() {
		defer close(in)
		for _, b := range batches {
			select {
			case in <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()
	for b := range out {
		for _, it := range b {
			switch it.kind {
			case kindMalformed:
				setMember(st.malformed, it.key, it.exists)
			case kindOther:
				if it.exists {
					st.others.Add(it.key)
				} else {
					st.others.Remove(it.key)
				}
			case kindCurrent:
				st.put(it.tenant, it.entry)
			}
		}
	}
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// rereadItem is one key to read again, and what was read.
type rereadItem struct {
	key, tenant string
	kind        keyKind
	exists      bool      // kindMalformed, kindOther
	entry       *keyEntry // kindCurrent; nil when the key is gone
}

// rereadBatches is one connection's share of a reread: it reads each batch
// taken from in, fills in its items and sends it to out. Its span (one per
// connection, as a full read's hash readers) counts the pipelined batches
// as round trips and the keys re-read, the EXISTS among them apart.
func (m *Mirror) rereadBatches(ctx context.Context, in <-chan []rereadItem, out chan<- []rereadItem) (err error) {
	ctx, rt := startRoundTrips(ctx, "HGETALL", m.node)
	exists := 0
	defer func() {
		if rt.span.IsRecording() {
			rt.span.SetAttributes(attribute.Int("redis.exists_keys", exists))
		}
		rt.end(err)
	}()
	var c redis.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	skipped := map[usage.Reason]int{}
	for batch := range in {
		if c == nil {
			var err error
			if c, err = m.store.pool.GetContext(ctx); err != nil {
				return fmt.Errorf("redis connection: %w", err)
			}
		}
		rt.calls++
		rt.keys += len(batch)
		for _, it := range batch {
			cmd := "EXISTS"
			if it.kind == kindCurrent {
				cmd = "HGETALL"
			} else {
				exists++
			}
			if err := c.Send(cmd, it.key); err != nil {
				return fmt.Errorf("%s: %w", cmd, err)
			}
		}
		replies, err := redis.Values(m.store.do(ctx, c, "hgetall", ""))
		if err != nil {
			return err
		}
		if len(replies) != len(batch) {
			return fmt.Errorf("re-read: %d replies for %d keys", len(replies), len(batch))
		}
		for i := range batch {
			it := &batch[i]
			if it.kind != kindCurrent {
				n, err := redis.Int(replies[i], nil)
				if err != nil {
					return fmt.Errorf("EXISTS %q: %w", it.key, err)
				}
				it.exists = n > 0
				continue
			}
			if it.entry, err = decodeEntry(replies[i], skipped); err != nil {
				return fmt.Errorf("HGETALL %q: %w", it.key, err)
			}
		}
		select {
		case out <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// decodeEntry turns an HGETALL reply into a key's entry with the full
// read's decoder (decodeHGETALL), unreadable markers included: nil for a
// key that does not exist, an entry whose counters say the whole hash is
// unreadable for a key of another type. skipped is scratch space, emptied
// here.
func decodeEntry(reply any, skipped map[usage.Reason]int) (*keyEntry, error) {
	clear(skipped)
	counters, found, err := decodeHGETALL(reply, skipped)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	return &keyEntry{counters: counters, flaws: flaws{wrongType: skipped[usage.ReasonWrongType] > 0,
		invalidField: skipped[usage.ReasonInvalidField], invalidValue: skipped[usage.ReasonInvalidValue],
		oversized: skipped[usage.ReasonOversizedHash] > 0}}, nil
}

// fullRead reads the whole usage state into a new mirrorState with the
// node reader (node.go), so its stages overlap as in a full read (at 1M
// tenants a sequential seed did not fit a 60 s scrape): one connection
// SCANs, the key sorting records each key of the pattern, and hashReaders
// connections decode the period's hashes into entries. Paced (the
// self-check), the hashes are read on one connection and every round trip
// is followed by a rest as long as it took, so that the check never
// bursts.
func (m *Mirror) fullRead(ctx context.Context, periodID string, hint int, paced bool) (*mirrorState, error) {
	st := newMirrorState(periodID, hint)
	var mu sync.Mutex // st.tenants and its sums, shared by the hash readers
	n := &nodeReader{
		settings: &m.store.settings,
		pool:     m.store.pool,
		pattern:  m.pattern,
		periodID: periodID,
		record:   st,
		paced:    paced,
		readBatch: func(ctx context.Context, c redis.Conn, batch []pending, _ *usage.Snapshot) error {
			replies, err := m.store.pipelineHGETALL(ctx, c, batch)
			if err != nil {
				return err
			}
			entries := make([]*keyEntry, len(batch))
			skipped := map[usage.Reason]int{}
			for i, r := range replies {
				if entries[i], err = decodeEntry(r, skipped); err != nil {
					return fmt.Errorf("HGETALL %q: %w", batch[i].key, err)
				}
			}
			mu.Lock()
			for i, p := range batch {
				st.put(p.tenant, entries[i])
			}
			mu.Unlock()
			return nil
		},
	}
	if _, err := n.read(ctx); err != nil {
		return nil, err
	}
	return st, nil
}
