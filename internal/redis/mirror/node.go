package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// nodeMirror is the copy of one master's usage keys, kept current by its
// tracking pair. A read proves it current with a barrier and re-reads the
// keys Redis said changed; whenever it cannot be proven current (a lost
// connection, a restart, a flush, a new period, a failed re-read) the read
// is a full read of the node that seeds it anew. Its fields are the
// Mirror's lock's.
type nodeMirror struct {
	m      *Mirror
	node   read.Node
	logger *slog.Logger

	pair       *trackingPair
	state      *state
	nextReason string // why the next read must be full
	// loggedReason is the reason last logged for a full read, "" once one
	// worked: an outage is one line, not one per scrape.
	loggedReason string
	seededAt     int64 // UnixNano of the full read the state comes from; 0: none
	lastSize     int   // tenants of the last full read, to size the next
}

// read returns the node's usage state and how many keys it re-read.
func (n *nodeMirror) read(ctx context.Context, periodID string) (*usage.Snapshot, int, error) {
	reason := n.nextReason
	if reason == "" && n.state.periodID != periodID {
		reason = reasonPeriod
	}
	if reason == "" {
		r, err := n.pair.barrier(ctx, n.m.r.Settings(), n.node.Name)
		if err != nil && r == "" {
			return nil, 0, err
		}
		if err != nil {
			n.logger.Debug("tracking barrier failed", "err", err)
		}
		reason = r
	}
	if reason != "" {
		snap, err := n.seed(ctx, periodID, reason)
		return snap, 0, err
	}
	keys := n.pair.take()
	if err := n.reread(ctx, n.state, keys); err != nil {
		n.dropPair(reasonReadError)
		return nil, 0, err
	}
	return n.state.snapshot(), len(keys), nil
}

// dropPair forgets the pair and the state; the next read is a full read
// for reason.
func (n *nodeMirror) dropPair(reason string) {
	if n.pair != nil {
		n.pair.close()
		n.pair = nil
	}
	n.state, n.seededAt, n.nextReason = nil, 0, reason
}

// seed makes a new state with a full read, opening a new tracking pair
// first when the old one is lost.
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
	// Tracking is on from here: a key changed from now on is in the dirty
	// set, and any change before is in what the full read sees.
	n.pair.take()
	st, err := n.fullRead(ctx, periodID, n.lastSize, false)
	// Idle pooled connections may have died with the tracking ones (a
	// restart); each failure discards one, so a try per idle one reaches
	// fresh ones.
	for try := 0; err != nil && ctx.Err() == nil && reason == reasonConnectionLost && try < conn.MaxIdle; try++ {
		st, err = n.fullRead(ctx, periodID, n.lastSize, false)
	}
	if err != nil {
		n.dropPair(reason)
		return nil, err
	}
	n.state, n.nextReason, n.loggedReason = st, "", ""
	n.seededAt = n.m.now().UnixNano()
	n.lastSize = len(st.tenants)
	n.m.count(reason)
	return st.snapshot(), nil
}

// fullRead reads the node into a new state with the Reader's node reader;
// paced (the self-check) it never bursts.
func (n *nodeMirror) fullRead(ctx context.Context, periodID string, hint int, paced bool) (*state, error) {
	st := newState(periodID, hint)
	if err := n.m.r.ReadNode(ctx, n.node, n.m.pattern, periodID, &seedSink{st: st}, paced); err != nil {
		return nil, err
	}
	return st, nil
}

// rereadItem is one key to read again, and what was read.
type rereadItem struct {
	key, tenant string
	kind        keyKind
	exists      bool      // kindMalformed, kindOther
	entry       *keyEntry // kindCurrent; nil when the key is gone
}

// reread reads keys again into st: HGETALL for the period's keys, EXISTS
// for the others a full read counts, in pipelined batches on up to
// read.HashReaders connections at once.
func (n *nodeMirror) reread(ctx context.Context, st *state, keys map[string]struct{}) error {
	size := n.m.r.Settings().BatchSize
	var batches [][]rereadItem
	var batch []rereadItem
	for key := range keys {
		kind, tenant := st.classify(n.m.pattern, key)
		if kind == kindIgnored {
			continue
		}
		if batch == nil {
			batch = make([]rereadItem, 0, min(len(keys), size))
		}
		batch = append(batch, rereadItem{key: key, tenant: tenant, kind: kind})
		if len(batch) >= size {
			batches, batch = append(batches, batch), nil
		}
	}
	if batch != nil {
		batches = append(batches, batch)
	}
	var next atomic.Int64
	var mu sync.Mutex // st, one batch at a time
	g, ctx := errgroup.WithContext(ctx)
	for range min(read.HashReaders, len(batches)) {
		g.Go(func() error {
			return n.rereadBatches(ctx, func() []rereadItem {
				if i := int(next.Add(1)) - 1; i < len(batches) {
					return batches[i]
				}
				return nil
			}, func(b []rereadItem) {
				mu.Lock()
				defer mu.Unlock()
				for _, it := range b {
					if it.kind == kindCurrent {
						st.put(it.tenant, it.entry)
					} else {
						st.setOther(it.key, it.kind == kindMalformed, it.exists)
					}
				}
			})
		})
	}
	return g.Wait()
}

// rereadBatches is one connection's share of a re-read: it reads each batch
// from next until there is none and hands it to apply. Its span counts the
// batches as round trips, and the keys re-read, the EXISTS apart.
func (n *nodeMirror) rereadBatches(ctx context.Context, next func() []rereadItem, apply func([]rereadItem)) (err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "HGETALL", n.node.Name)
	exists := 0
	defer func() {
		if rt.Span.IsRecording() {
			rt.Span.SetAttributes(attribute.Int("redis.exists_keys", exists))
		}
		rt.End(err)
	}()
	c, err := n.m.r.Conn(ctx, n.node.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	set := n.m.r.Settings()
	skipped := map[usage.Reason]int{}
	for batch := next(); batch != nil; batch = next() {
		rt.Calls++
		rt.Keys += len(batch)
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
		replies, err := redis.Values(set.Do(ctx, c, "hgetall", ""))
		if err != nil {
			return err
		}
		if len(replies) != len(batch) {
			return fmt.Errorf("re-read: %d replies for %d keys", len(replies), len(batch))
		}
		for i := range batch {
			it := &batch[i]
			if it.kind != kindCurrent {
				k, err := redis.Int(replies[i], nil)
				if err != nil {
					return fmt.Errorf("EXISTS %q: %w", it.key, err)
				}
				it.exists = k > 0
			} else if it.entry, err = decodeEntry(replies[i], skipped); err != nil {
				return fmt.Errorf("HGETALL %q: %w", it.key, err)
			}
		}
		apply(batch)
	}
	return nil
}
