package mirror

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// state is one node's copy of the keys a full read counts. Snapshots
// borrow its maps; a change while one does clones them.
type state struct {
	periodID  string
	tenants   map[string]usage.Counters
	types     usage.TypeCounts
	lent      *atomic.Int32                   // borrowers; nil: none since the maps were made
	flawed    map[string]map[usage.Reason]int // the few hashes with a skip
	skipped   map[usage.Reason]int            // summed over flawed
	others    otherKeys
	malformed map[string]struct{}
	changed   []string // tenants put since the last snapshot
}

type keyEntry struct {
	counters usage.Counters
	skipped  map[usage.Reason]int
}

func newState(periodID string, sizeHint int) *state {
	return &state{
		periodID:  periodID,
		tenants:   make(map[string]usage.Counters, sizeHint),
		types:     usage.TypeCounts{},
		flawed:    map[string]map[usage.Reason]int{},
		skipped:   map[usage.Reason]int{},
		others:    newOtherKeys(),
		malformed: map[string]struct{}{},
	}
}

// put records a tenant's hash, e nil when it is gone.
func (st *state) put(tenant string, e *keyEntry) {
	old, had := st.tenants[tenant]
	if !had && e == nil || had && e != nil && old.Equal(e.counters) && maps.Equal(st.flawed[tenant], e.skipped) {
		return
	}
	if st.lent != nil && st.lent.Load() > 0 {
		st.tenants, st.types = maps.Clone(st.tenants), maps.Clone(st.types)
	}
	st.lent = nil
	if had {
		st.types.Add(old, -1)
		for reason, n := range st.flawed[tenant] {
			st.skipped[reason] -= n
		}
		delete(st.flawed, tenant)
		if e == nil {
			delete(st.tenants, tenant)
			st.changed = append(st.changed, tenant)
			return
		}
	} else {
		tenant = strings.Clone(tenant)
	}
	st.changed = append(st.changed, tenant)
	st.tenants[tenant] = e.counters
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
		st.others.Set(tenant, pid, exists)
	case exists:
		st.malformed[key] = struct{}{}
	default:
		delete(st.malformed, key)
	}
}

// snapshot lends the maps, with the tenants changed since the last one.
func (st *state) snapshot() *usage.Snapshot {
	snap := usage.NewSnapshot(st.periodID)
	snap.Tenants, snap.Types, snap.Changed = st.tenants, st.types, st.changed
	st.changed = nil
	if st.lent == nil {
		st.lent = new(atomic.Int32)
	}
	lent := st.lent
	lent.Add(1)
	snap.Lend(func() { lent.Add(-1) })
	snap.Keys = len(st.tenants) + st.others.Len()
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

// seedSink fills a state.
type seedSink struct {
	st      *state
	pattern usage.KeyPattern
	mu      sync.Mutex
}

func (s *seedSink) Other(key string) { s.st.setOther(s.pattern, key, true) }

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
