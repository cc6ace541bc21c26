package read

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Key is a usage key of the period waiting for its HGETALL.
type Key struct {
	Name, Tenant string
	asking       bool // the node imports the key's slot: send ASKING first
}

// Sink takes what a node read finds in place of the snapshot it builds by
// default. A read with a sink keeps no set of the keys seen: a key SCAN
// returns twice reaches the sink twice.
type Sink interface {
	// Other receives a usage key that is malformed or of another period.
	Other(key string, malformed bool)
	// Hashes receives the HGETALL replies of keys of the period; it is
	// called from up to HashReaders goroutines at once.
	Hashes(keys []Key, replies []any) error
}

// HashReaders is how many connections read HGETALL batches at once: while
// Redis answers one, the other's replies are decoded here.
const HashReaders = 2

// sizeHints remember how many keys and tenants the last read saw, to size
// the next read's maps.
type sizeHints struct {
	keys, tenants atomic.Int64
}

// nodeReader reads one node's usage keys in stages on their own
// goroutines: one connection SCANs, the keys are sorted (each once, parsed,
// counted, the period's batched), and HashReaders connections read the
// batches. The node sees one command or pipelined batch at a time from
// each connection.
type nodeReader struct {
	r        *Reader
	addr     string
	pattern  usage.KeyPattern
	periodID string
	owns     func(key string) (mine, asking bool) // nil: every key
	skip     map[string]struct{}                  // keys read on another node
	fetch    func(ctx context.Context, c redis.Conn, batch []Key) ([]any, error)
	hints    *sizeHints // nil: none
	sink     Sink       // nil: build the snapshot
	paced    bool
}

// nodeResult is what one node contributed to a read.
type nodeResult struct {
	snap *usage.Snapshot
	keys []string // keys the node answered for (owns set), for the check that none is read twice
}

// read reads the node: a complete result or an error, never a partial one.
func (n *nodeReader) read(ctx context.Context) (*nodeResult, error) {
	g, ctx := errgroup.WithContext(ctx)
	snap := usage.NewSnapshot(n.periodID)
	if n.hints != nil {
		t := n.hints.tenants.Load()
		snap.Tenants = make(map[string]usage.Counters, t+t/8)
		defer func() { n.hints.tenants.Store(int64(len(snap.Tenants))) }()
	}
	res := &nodeResult{snap: snap}
	scanned := usage.NewSnapshot(n.periodID) // Keys and key skips, sortKeys' own
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
		g.Go(func() error { return n.readBatches(ctx, batches, snap, &mu) })
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

// scanKeys SCANs the keyspace for the pattern and sends each page to out,
// doing nothing else between two SCANs.
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

// sortKeys counts the usage keys of the pages into snap and sends the
// period's keys to out in batches.
func (n *nodeReader) sortKeys(ctx context.Context, pages <-chan []any, snap *usage.Snapshot, res *nodeResult, out chan<- []Key) error {
	var seen map[string]struct{} // SCAN may return a key twice
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
			if seen != nil { // one map operation per key
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
				if n.sink != nil {
					n.sink.Other(key, true)
				}
				continue
			}
			snap.Keys++
			if pid != snap.PeriodID {
				if n.sink != nil {
					n.sink.Other(key, false)
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

// readBatches is one hash reader: it reads the batches from in on one
// connection and hands their replies to the sink, or adds their hashes to
// snap under mu.
func (n *nodeReader) readBatches(ctx context.Context, in <-chan []Key, snap *usage.Snapshot, mu *sync.Mutex) (err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "HGETALL", n.r.name(n.addr))
	defer func() { rt.End(err) }()
	var c redis.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	dec := usage.NewSnapshot(snap.PeriodID) // this reader's batch, decoded
	for b := range in {
		if c == nil {
			if c, err = n.r.Conn(ctx, n.addr); err != nil {
				return err
			}
		}
		rt.Calls++
		rt.Keys += len(b)
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
				if err := decodeInto(r, b[i], dec); err != nil {
					return fmt.Errorf("HGETALL %q: %w", b[i].Name, err)
				}
			}
			mu.Lock()
			for tenant, counters := range dec.Tenants {
				snap.Tenants[tenant] = counters
			}
			for reason, k := range dec.Skipped {
				snap.Skipped[reason] += k
			}
			mu.Unlock()
			clear(dec.Tenants)
			clear(dec.Skipped)
		}
		if err := n.rest(ctx, start); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// rest waits, when the read is paced, as long as the round trip begun at
// start took.
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

// pipeline sends ASKING (where needed) and HGETALL for every key in one
// round trip and returns the HGETALL replies; a per-key error (WRONGTYPE, a
// redirection) is an element.
func (r *Reader) pipeline(ctx context.Context, c redis.Conn, batch []Key) ([]any, error) {
	sent := 0
	for _, k := range batch {
		if k.asking {
			if err := c.Send("ASKING"); err != nil {
				return nil, fmt.Errorf("ASKING: %w", err)
			}
			sent++
		}
		if err := c.Send("HGETALL", k.Name); err != nil {
			return nil, fmt.Errorf("HGETALL: %w", err)
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
	if sent == len(batch) {
		return all, nil
	}
	replies := make([]any, 0, len(batch))
	i := 0
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

// decodeInto decodes one HGETALL reply into snap. TRYAGAIN (a slot
// mid-migration) means the layout changed under the read.
func decodeInto(reply any, k Key, snap *usage.Snapshot) error {
	if rerr, ok := reply.(redis.Error); ok && redisc.IsTryAgain(rerr) {
		return fmt.Errorf("%w: %v", ErrTopologyChanged, rerr)
	}
	counters, found, err := DecodeHGETALL(reply, snap.Skipped)
	if err != nil {
		return err
	}
	if found {
		// The id alone, not the whole key it is a slice of: reports keep it.
		snap.Tenants[strings.Clone(k.Tenant)] = counters
	}
	return nil
}

// DecodeHGETALL turns one HGETALL reply into counters. A key of another
// type and a hash over the reply bound are found, unreadable, and counted
// in skipped; found is false for a key that no longer exists.
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
	var scratch [8][]byte // the usual four fields, without a slice per hash
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
