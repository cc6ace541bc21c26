package mirror

import (
	"fmt"
	"iter"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// state is one node's copy of the keys a full read counts: an entry per
// tenant with a key in any period. Snapshots borrow its table; a change
// while one does clones it.
type state struct {
	periodID  string
	tenants   *tenantTable
	current   int // entries with a key in the period
	types     usage.TypeCounts
	lent      *atomic.Int32                   // borrowers; nil: none since the table was made
	flawed    map[string]map[usage.Reason]int // the few hashes with a skip
	skipped   map[usage.Reason]int            // summed over flawed
	others    periodBits
	malformed map[string]struct{}
	changed   []string // tenants put since the last snapshot, once installed
	installed bool     // before, every tenant is new to a snapshot
}

// entry is a tenant's keys: its counters in the period, nil without a
// key there, and a bit per other period it has a key in.
type entry struct {
	counters usage.Counters
	others   uint64
}

type keyEntry struct {
	counters usage.Counters
	skipped  map[usage.Reason]int
}

func newState(periodID string, sizeHint int) *state {
	return &state{
		periodID:  periodID,
		tenants:   newTenantTable(sizeHint),
		types:     usage.TypeCounts{},
		flawed:    map[string]map[usage.Reason]int{},
		skipped:   map[usage.Reason]int{},
		malformed: map[string]struct{}{},
	}
}

// store replaces tenant's entry old with e, in a table of its own while
// one is lent, and returns the id the table holds: a copy of tenant, which
// may be a slice of a key, for a new entry.
func (st *state) store(tenant string, old, e entry) string {
	if st.lent != nil && st.lent.Load() > 0 {
		st.tenants, st.types = st.tenants.clone(), maps.Clone(st.types)
	}
	st.lent = nil
	switch {
	case e == entry{}:
		st.tenants.remove(tenant)
	case old == entry{}:
		tenant = st.tenants.put(strings.Clone(tenant), e)
	default:
		tenant = st.tenants.put(tenant, e)
	}
	if (old.counters != nil) != (e.counters != nil) {
		if e.counters != nil {
			st.current++
		} else {
			st.current--
		}
	}
	return tenant
}

// put records a tenant's hash, e nil when it is gone.
func (st *state) put(tenant string, e *keyEntry) {
	cur := st.tenants.get(tenant)
	old, had := cur.counters, cur.counters != nil
	if !had && e == nil || had && e != nil && old.Equal(e.counters) && maps.Equal(st.flawed[tenant], e.skipped) {
		return
	}
	if had {
		st.types.Add(old, -1)
		for reason, n := range st.flawed[tenant] {
			st.skipped[reason] -= n
		}
		delete(st.flawed, tenant)
	}
	next := entry{others: cur.others}
	if e != nil {
		next.counters = e.counters
	}
	if id := st.store(tenant, cur, next); st.installed {
		st.changed = append(st.changed, id)
	}
	if e == nil {
		return
	}
	st.types.Add(e.counters, 1)
	if e.skipped != nil {
		st.flawed[tenant] = e.skipped
	}
	for reason, n := range e.skipped {
		st.skipped[reason] += n
	}
}

// setOther records whether key, not of the current period, exists.
func (st *state) setOther(pattern usage.KeyPattern, key string, exists bool) {
	tenant, pid, err := pattern.Parse(key)
	switch {
	case err == nil:
		st.setOtherKey(tenant, pid, exists)
	case exists:
		st.malformed[key] = struct{}{}
	default:
		delete(st.malformed, key)
	}
}

// snapshot lends the table, with the tenants changed since the last one.
func (st *state) snapshot() *usage.Snapshot {
	snap := usage.NewSnapshot(st.periodID)
	snap.Tenants, snap.Types, snap.Changed = tenantView{st.tenants, st.current}, st.types, st.changed
	st.changed = nil
	if st.lent == nil {
		st.lent = new(atomic.Int32)
	}
	lent := st.lent
	lent.Add(1)
	snap.Lend(func() { lent.Add(-1) })
	snap.Keys = st.current + st.others.len()
	for reason, n := range st.skipped {
		if n > 0 {
			snap.Skipped[reason] = n
		}
	}
	if len(st.malformed) > 0 {
		snap.Skipped[usage.ReasonMalformedKey] = len(st.malformed)
	}
	return snap
}

// tenantView is a lent table as usage.Tenants: the entries with a key in
// the period, n of them.
type tenantView struct {
	t *tenantTable
	n int
}

func (v tenantView) Len() int { return v.n }

func (v tenantView) Lookup(tenant string) (usage.Counters, bool) {
	c := v.t.get(tenant).counters
	return c, c != nil
}

func (v tenantView) LookupID(tenant string) (string, usage.Counters, bool) {
	id, e := v.t.lookup(tenant)
	if e.counters == nil {
		return "", nil, false
	}
	return id, e.counters, true
}

func (v tenantView) All() iter.Seq2[string, usage.Counters] {
	return func(yield func(string, usage.Counters) bool) {
		for tenant, e := range v.t.all() {
			if e.counters != nil && !yield(tenant, e.counters) {
				return
			}
		}
	}
}

// seedSink fills a state.
type seedSink struct {
	st      *state
	pattern usage.KeyPattern
	mu      sync.Mutex
}

func (s *seedSink) Other(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.setOther(s.pattern, key, true)
}

func (s *seedSink) Hashes(keys []read.Key, replies []any) error {
	entries := make([]*keyEntry, len(keys))
	exists := make([]bool, len(keys))
	skipped := map[usage.Reason]int{}
	var err error
	for i, k := range keys {
		if k.Exists {
			if exists[i], err = redis.Bool(replies[i], nil); err != nil {
				return fmt.Errorf("EXISTS %q: %w", k.Name, err)
			}
			continue
		}
		clear(skipped)
		counters, found, err := read.DecodeHGETALL(replies[i], skipped)
		if err != nil {
			return fmt.Errorf("HGETALL %q: %w", k.Name, err)
		}
		if found {
			entries[i] = &keyEntry{counters: counters}
			if len(skipped) > 0 {
				entries[i].skipped = maps.Clone(skipped)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		if k.Exists {
			s.st.setOther(s.pattern, k.Name, exists[i])
		} else {
			s.st.put(k.Tenant, entries[i])
		}
	}
	return nil
}
