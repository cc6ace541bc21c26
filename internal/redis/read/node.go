package read

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Key is a key to read with HGETALL, or EXISTS.
type Key struct {
	Name, Tenant string
	Exists       bool
	asking       bool
}

// Sink takes what a read finds instead of a snapshot.
type Sink interface {
	Other(key string)
	// Hashes is called from HashReaders goroutines at once.
	Hashes(keys []Key, replies []any) error
}

// HashReaders is how many connections read batches at once.
const HashReaders = 2

type sizeHints struct {
	keys, tenants atomic.Int64
}

// nodeReader reads a node in stages on their own connections: SCAN, the
// keys sorted into batches, and the batches read.
type nodeReader struct {
	r        *Reader
	addr     string
	pattern  usage.KeyPattern
	periodID string
	owns     func(key string) (mine, asking bool)
	skip     map[string]struct{}
	fetch    func(ctx context.Context, c redis.Conn, batch []Key) ([]any, error)
	hints    *sizeHints
	sink     Sink
	paced    bool
}

type nodeResult struct {
	snap *usage.Snapshot
	keys []string // owned
}

func (n *nodeReader) read(ctx context.Context) (*nodeResult, error) {
	g, ctx := errgroup.WithContext(ctx)
	snap, tenants := usage.NewSnapshot(n.periodID), usage.TenantMap{}
	if n.hints != nil {
		t := n.hints.tenants.Load()
		tenants = make(usage.TenantMap, t+t/8)
		defer func() { n.hints.tenants.Store(int64(len(tenants))) }()
	}
	snap.Tenants = tenants
	res := &nodeResult{snap: snap}
	scanned := usage.NewSnapshot(n.periodID)
	pages := make(chan []any, 4)
	batches := make(chan []Key, 2)
	g.Go(func() error { defer close(pages); return n.scanKeys(ctx, pages) })
	g.Go(func() error { defer close(batches); return n.sortKeys(ctx, pages, scanned, res, batches) })
	var mu sync.Mutex
	readers := HashReaders
	if n.paced {
		readers = 1
	}
	for range readers {
		g.Go(func() error { return n.readBatches(ctx, batches, tenants, snap.Skipped, &mu) })
	}
	if err := g.Wait(); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, n.r.nodeErr(n.addr, err)
	}
	snap.Keys = scanned.Keys
	for reason, k := range scanned.Skipped {
		snap.Skipped[reason] += k
	}
	return res, nil
}

// scanKeys does nothing but SCAN.
func (n *nodeReader) scanKeys(ctx context.Context, out chan<- []any) (err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "SCAN", n.r.name(n.addr))
	defer func() { rt.End(err) }()
	c, err := n.r.Conn(ctx, n.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	glob := n.pattern.Glob()
	cursor := "0"
	for {
		start := time.Now()
		reply, err := redis.Values(n.r.set.Do(ctx, c, "scan", "SCAN", cursor, "MATCH", glob, "COUNT", n.r.set.ScanCount))
		rt.Calls++
		if err != nil {
			return err
		}
		if len(reply) != 2 {
			return fmt.Errorf("SCAN: unexpected reply of %d elements", len(reply))
		}
		if cursor, err = redis.String(reply[0], nil); err != nil {
			return fmt.Errorf("SCAN cursor: %w", err)
		}
		keys, ok := reply[1].([]any)
		if !ok {
			return fmt.Errorf("SCAN keys: unexpected reply type %T", reply[1])
		}
		rt.Keys += len(keys)
		select {
		case out <- keys:
		case <-ctx.Done():
			return ctx.Err()
		}
		if cursor == "0" {
			return nil
		}
		if err := n.rest(ctx, start); err != nil {
			return err
		}
	}
}

func (n *nodeReader) sortKeys(ctx context.Context, pages <-chan []any, snap *usage.Snapshot, res *nodeResult, out chan<- []Key) error {
	var seen map[string]struct{}
	switch {
	case n.sink != nil:
	case n.hints != nil:
		k := n.hints.keys.Load()
		seen = make(map[string]struct{}, k+k/8)
		defer func() { n.hints.keys.Store(int64(len(seen))) }()
	default:
		seen = map[string]struct{}{}
	}
	var batch []Key
	send := func() error {
		select {
		case out <- batch:
			batch = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for page := range pages {
		keys, err := redis.Strings(page, nil)
		if err != nil {
			return fmt.Errorf("SCAN keys: %w", err)
		}
		for _, key := range keys {
			if seen != nil {
				k := len(seen)
				if seen[key] = struct{}{}; len(seen) == k {
					continue
				}
			}
			if _, dup := n.skip[key]; dup {
				continue
			}
			asking := false
			if n.owns != nil {
				var mine bool
				if mine, asking = n.owns(key); !mine {
					continue
				}
				res.keys = append(res.keys, key)
			}
			tenant, pid, err := n.pattern.Parse(key)
			if err != nil {
				snap.Skipped[usage.ReasonMalformedKey]++
			} else {
				snap.Keys++
			}
			if err != nil || pid != snap.PeriodID {
				if n.sink != nil {
					n.sink.Other(key)
				}
				continue
			}
			batch = append(batch, Key{Name: key, Tenant: tenant, asking: asking})
			if len(batch) >= n.r.set.BatchSize {
				if err := send(); err != nil {
					return err
				}
			}
		}
	}
	if len(batch) > 0 {
		return send()
	}
	return ctx.Err()
}

// readBatches decodes into tenants and skipped, under mu.
func (n *nodeReader) readBatches(ctx context.Context, in <-chan []Key, tenants usage.TenantMap, skipped map[usage.Reason]int, mu *sync.Mutex) (err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "HGETALL", n.r.name(n.addr))
	exists := 0
	defer func() {
		if exists > 0 {
			rt.Span.SetAttributes(attribute.Int("redis.exists_keys", exists))
		}
		rt.End(err)
	}()
	var c redis.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	decTenants, decSkipped := usage.TenantMap{}, map[usage.Reason]int{}
	for b := range in {
		if c == nil {
			if c, err = n.r.Conn(ctx, n.addr); err != nil {
				return err
			}
		}
		rt.Calls++
		rt.Keys += len(b)
		for _, k := range b {
			if k.Exists {
				exists++
			}
		}
		start := time.Now()
		replies, err := n.fetch(ctx, c, b)
		if err != nil {
			return err
		}
		if n.sink != nil {
			if err := n.sink.Hashes(b, replies); err != nil {
				return err
			}
		} else {
			for i, r := range replies {
				if err := decodeInto(r, b[i], decTenants, decSkipped); err != nil {
					return fmt.Errorf("HGETALL %q: %w", b[i].Name, err)
				}
			}
			mu.Lock()
			maps.Copy(tenants, decTenants)
			for reason, k := range decSkipped {
				skipped[reason] += k
			}
			mu.Unlock()
			clear(decTenants)
			clear(decSkipped)
		}
		if err := n.rest(ctx, start); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (n *nodeReader) rest(ctx context.Context, start time.Time) error {
	if !n.paced {
		return nil
	}
	select {
	case <-time.After(time.Since(start)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pipeline reads batch in one round trip.
func (r *Reader) pipeline(ctx context.Context, c redis.Conn, batch []Key) ([]any, error) {
	sent := 0
	for _, k := range batch {
		if k.asking {
			if err := c.Send("ASKING"); err != nil {
				return nil, fmt.Errorf("ASKING: %w", err)
			}
			sent++
		}
		cmd := "HGETALL"
		if k.Exists {
			cmd = "EXISTS"
		}
		if err := c.Send(cmd, k.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		sent++
	}
	all, err := redis.Values(r.set.Do(ctx, c, "hgetall", ""))
	if err != nil {
		return nil, err
	}
	if len(all) != sent {
		return nil, fmt.Errorf("HGETALL: %d replies for %d commands", len(all), sent)
	}
	replies, i := all[:0], 0 // in place: ASKING replies dropped
	for _, k := range batch {
		if k.asking {
			if rerr, ok := all[i].(redis.Error); ok {
				return nil, fmt.Errorf("ASKING: %w", rerr)
			}
			i++
		}
		replies = append(replies, all[i])
		i++
	}
	return replies, nil
}

func decodeInto(reply any, k Key, tenants usage.TenantMap, skipped map[usage.Reason]int) error {
	if rerr, ok := reply.(redis.Error); ok && redisc.IsTryAgain(rerr) {
		return fmt.Errorf("%w: %v", ErrTopologyChanged, rerr)
	}
	counters, found, err := DecodeHGETALL(reply, skipped)
	if err != nil {
		return err
	}
	if found {
		tenants[strings.Clone(k.Tenant)] = counters
	}
	return nil
}

// DecodeHGETALL decodes a reply; a key of another type or too large is
// found, unreadable.
func DecodeHGETALL(reply any, skipped map[usage.Reason]int) (usage.Counters, bool, error) {
	if rerr, ok := reply.(redis.Error); ok {
		switch {
		case strings.HasPrefix(string(rerr), "WRONGTYPE"):
			skipped[usage.ReasonWrongType]++
			return usage.UnreadableHash(usage.ReasonWrongType), true, nil
		case conn.IsOversized(rerr):
			skipped[usage.ReasonOversizedHash]++
			return usage.UnreadableHash(usage.ReasonOversizedHash), true, nil
		}
		return nil, false, rerr
	}
	values, ok := reply.([]any)
	if !ok {
		return nil, false, fmt.Errorf("unexpected reply type %T", reply)
	}
	if len(values) == 0 {
		return nil, false, nil
	}
	var scratch [8][]byte
	pairs := scratch[:0]
	for _, v := range values {
		b, ok := v.([]byte)
		if !ok {
			return nil, false, fmt.Errorf("unexpected element type %T", v)
		}
		pairs = append(pairs, b)
	}
	return usage.DecodeHash(pairs, skipped), true, nil
}
