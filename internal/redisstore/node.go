package redisstore

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

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// The one Redis read engine: nodeReader reads the usage keys one node
// holds. Store runs one over its server; Cluster runs one over each master,
// with a filter for the slots that master answers for and a batch reader
// that follows ASK redirections.

// pending is a usage key of the period waiting for its HGETALL.
type pending struct {
	key, tenant string
	asking      bool // the node is importing the key's slot: send ASKING first
}

// batchReader reads one pipelined batch of HGETALLs on conn into into.
type batchReader func(ctx context.Context, conn redis.Conn, batch []pending, into *usage.Snapshot) error

// sizeHints remember how many keys and tenants the last read of a node
// saw, to size the next read's maps: growing a map of 300k keys costs more
// than the SCANs.
type sizeHints struct {
	keys, tenants atomic.Int64
}

// nodeReader reads one node's usage keys: SCAN … MATCH … COUNT on one
// connection, key sorting (each key once, parsed, counted, the current
// period's batched), and pipelined HGETALL batches on hashReaders other
// connections.
type nodeReader struct {
	*settings
	pool     *redis.Pool
	node     string // host:port in a cluster, named in errors; "" for a single server
	pattern  usage.KeyPattern
	periodID string
	// owns says whether the node answers for key and whether its HGETALL
	// needs ASKING first; nil: every key (a single server).
	owns func(key string) (mine, asking bool)
	// skip holds keys already read on another node; nil: none.
	skip map[string]struct{}
	// readBatch reads one batch; nil: pipelineHGETALL and decode.
	readBatch batchReader
	hints     *sizeHints // nil: no hints
	// record, when set, receives every usage key the read sees of another
	// period or malformed (a track-mode mirror being seeded, mirror.go);
	// its readBatch records the period's keys.
	record *mirrorState
	// paced reads the hashes on one connection and makes every SCAN and
	// batch rest as long as it took (the mirror's background self-check).
	paced bool
}

// nodeResult is what one node contributed to a read.
type nodeResult struct {
	snap *usage.Snapshot // Keys, Skipped and Tenants of this node
	// keys are the keys the node answered for (cluster only: owns set),
	// in scan order, for the cluster's check that no key is read twice.
	keys []string
}

// read reads the node. It returns a complete result or an error, never a
// partial one. Every round trip is bounded by ctx's deadline, and once ctx
// ends no further command is sent.
//
// The read is a pipeline of stages on their own goroutines: scanKeys only
// sends SCANs, sortKeys counts and batches the keys they return, and
// hashReaders connections read the batches. SCAN and HGETALL thus overlap
// on separate connections, and no SCAN waits for this side's processing of
// the one before it. The node sees one command (or one pipelined batch) at
// a time from each connection, at most 1 + hashReaders at once, never a
// burst.
func (n *nodeReader) read(ctx context.Context) (*nodeResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	// run runs one stage; the first stage to fail stops the others.
	run := func(stage func() error) {
		wg.Go(func() {
			if err := stage(); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}

	snap := usage.NewSnapshot(n.periodID)
	if n.hints != nil {
		t := n.hints.tenants.Load()
		snap.Tenants = make(map[string]usage.Counters, t+t/8)
		defer func() { n.hints.tenants.Store(int64(len(snap.Tenants))) }()
	}
	res := &nodeResult{snap: snap}
	scanned := usage.NewSnapshot(n.periodID) // Keys and key skips, owned by sortKeys
	pages := make(chan []any, 4)
	batches := make(chan []pending, 2)
	run(func() error { defer close(pages); return n.scanKeys(ctx, pages) })
	run(func() error { defer close(batches); return n.sortKeys(ctx, pages, scanned, res, batches) })
	var snapMu sync.Mutex
	readers := hashReaders
	if n.paced {
		readers = 1 // a background check: no overlap needed
	}
	for range readers {
		run(func() error { return n.readBatches(ctx, batches, snap, &snapMu) })
	}
	wg.Wait()
	if firstErr != nil {
		if n.node != "" && !errors.Is(firstErr, context.Canceled) && !errors.Is(firstErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("redis node %s: %w", n.node, firstErr)
		}
		return nil, firstErr
	}
	snap.Keys = scanned.Keys
	for reason, k := range scanned.Skipped {
		snap.Skipped[reason] += k
	}
	return res, nil
}

// scanKeys SCANs the whole keyspace for the pattern and sends every page of
// keys to out. It does nothing else: a SCAN waits for the previous one's
// reply, so any work done between them would add to every one of the
// hundreds of round trips of a read.
func (n *nodeReader) scanKeys(ctx context.Context, out chan<- []any) (err error) {
	ctx, rt := startRoundTrips(ctx, "SCAN", n.node)
	defer func() { rt.end(err) }()
	c, err := n.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("redis connection: %w", err)
	}
	defer c.Close()
	glob := n.pattern.Glob()
	cursor := "0"
	for {
		start := time.Now()
		reply, err := redis.Values(n.do(ctx, c, "scan", "SCAN", cursor, "MATCH", glob, "COUNT", n.scanCount))
		rt.calls++
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
		rt.keys += len(keys)
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
// current period's keys to out in batches.
func (n *nodeReader) sortKeys(ctx context.Context, pages <-chan []any, snap *usage.Snapshot, res *nodeResult, out chan<- []pending) error {
	// SCAN may return a key more than once; count each key once. A read
	// that seeds a mirror (record) keeps no such set: the mirror holds
	// each key once in its own maps and takes its counts from them, and a
	// key SCAN returns twice is read twice, its second entry replacing
	// the first (any change in between is re-read by the next read, as
	// tracking is on). A set of every key of every period was the largest
	// thing a seed held: 184 MB at 3 million keys (BENCHMARKS.md).
	var seen map[string]struct{}
	switch {
	case n.record != nil:
	case n.hints != nil:
		k := n.hints.keys.Load()
		seen = make(map[string]struct{}, k+k/8)
		defer func() { n.hints.keys.Store(int64(len(seen))) }()
	default:
		seen = map[string]struct{}{}
	}
	var batch []pending
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
			// One map operation per key, not a lookup and then an insert:
			// with 300k keys each is a cache miss (BENCHMARKS.md, "Figures
			// behind decisions in the code").
			if seen != nil {
				k := len(seen)
				if seen[key] = struct{}{}; len(seen) == k {
					continue
				}
			}
			if _, dup := n.skip[key]; dup {
				continue // read on another node
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
				if n.record != nil {
					n.record.malformed[key] = struct{}{}
				}
				continue
			}
			snap.Keys++
			if pid != snap.PeriodID {
				if n.record != nil {
					n.record.others.Add(key)
				}
				continue
			}
			batch = append(batch, pending{key: key, tenant: tenant, asking: asking})
			if len(batch) >= n.batchSize {
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

// hashReaders is how many connections read HGETALL batches at once. Redis
// runs one command at a time whatever the number, so its CPU per read does
// not change; what two buy is overlap: while Redis answers one connection's
// batch, the other connection's replies are parsed and decoded here. Two
// were measurably faster than one; more would only queue at Redis
// (BENCHMARKS.md, "Figures behind decisions in the code").
const hashReaders = 2

// readBatches is one hash reader: it reads the batches it takes from in on
// one connection until in is closed, and adds each batch's hashes to snap
// under mu.
func (n *nodeReader) readBatches(ctx context.Context, in <-chan []pending, snap *usage.Snapshot, mu *sync.Mutex) (err error) {
	ctx, rt := startRoundTrips(ctx, "HGETALL", n.node)
	defer func() { rt.end(err) }()
	readBatch := n.readBatch
	if readBatch == nil {
		readBatch = n.hgetall
	}
	var c redis.Conn
	dec := usage.NewSnapshot(snap.PeriodID) // this reader's batch, decoded
	for b := range in {
		if c == nil {
			var err error
			if c, err = n.pool.GetContext(ctx); err != nil {
				return fmt.Errorf("redis connection: %w", err)
			}
			defer c.Close()
		}
		rt.calls++
		rt.keys += len(b)
		start := time.Now()
		if err := readBatch(ctx, c, b, dec); err != nil {
			return err
		}
		if err := n.rest(ctx, start); err != nil {
			return err
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

// hgetall is the batch reader of a single server: one pipeline, every reply
// decoded.
func (n *nodeReader) hgetall(ctx context.Context, c redis.Conn, batch []pending, into *usage.Snapshot) error {
	replies, err := n.pipelineHGETALL(ctx, c, batch)
	if err != nil {
		return err
	}
	for i, r := range replies {
		if err := decodeInto(r, batch[i], into); err != nil {
			return fmt.Errorf("HGETALL %q: %w", batch[i].key, err)
		}
	}
	return nil
}

// pipelineHGETALL sends ASKING (where needed) and HGETALL for every key in
// one round trip and returns the HGETALL replies, one per key; a per-key
// error (WRONGTYPE, a redirection) comes back as an element.
func (s *settings) pipelineHGETALL(ctx context.Context, conn redis.Conn, batch []pending) ([]any, error) {
	sent := 0
	for _, p := range batch {
		if p.asking {
			if err := conn.Send("ASKING"); err != nil {
				return nil, fmt.Errorf("ASKING: %w", err)
			}
			sent++
		}
		if err := conn.Send("HGETALL", p.key); err != nil {
			return nil, fmt.Errorf("HGETALL: %w", err)
		}
		sent++
	}
	// Do with no command flushes the pipeline and returns every pending
	// reply.
	all, err := redis.Values(s.do(ctx, conn, "hgetall", ""))
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
	for _, p := range batch {
		if p.asking {
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

// decodeInto decodes one HGETALL reply into snap. A TRYAGAIN reply (a
// cluster slot mid-migration) means the layout changed under the read.
func decodeInto(reply any, p pending, snap *usage.Snapshot) error {
	if rerr, ok := reply.(redis.Error); ok && redisc.IsTryAgain(rerr) {
		return fmt.Errorf("%w: %v", ErrTopologyChanged, rerr)
	}
	counters, found, err := decodeHGETALL(reply, snap.Skipped)
	if err != nil {
		return err
	}
	if found {
		// The id alone, not the whole key it is a slice of: the join's
		// statuses keep it (and every later join takes the last one's
		// ids), and at a million tenants the keys' other bytes were 16 MB.
		snap.Tenants[strings.Clone(p.tenant)] = counters
	}
	return nil
}

// decodeHGETALL turns one HGETALL reply into counters. A key holding another
// type, and a hash whose reply is over --redis.max-reply-bytes (dropped as
// it streamed in, bounded.go), are counted skips, not errors: the tenant is
// found, with counters that say its usage is unreadable (not 0); found is
// false for a key that vanished between SCAN and HGETALL (an empty reply).
func decodeHGETALL(reply any, skipped map[usage.Reason]int) (usage.Counters, bool, error) {
	if rerr, ok := reply.(redis.Error); ok {
		switch {
		case strings.HasPrefix(string(rerr), "WRONGTYPE"):
			skipped[usage.ReasonWrongType]++
			return usage.UnreadableHash(usage.ReasonWrongType), true, nil
		case isOversized(rerr):
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
	// A stack array for the usual four fields instead of redis.ByteSlices'
	// slice per hash (one per tenant per scrape).
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
