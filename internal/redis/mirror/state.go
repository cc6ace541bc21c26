package mirror

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// state is one node's copy: every key a full read's SCAN would return,
// sorted the way a full read counts it.
//
// A read lends the state's own maps (tenants, types) to its snapshot
// rather than a copy (usage.Snapshot.Lend); a change while a snapshot holds
// them clones them first, so a snapshot never changes while it is used.
type state struct {
	periodID string
	tenants  map[string]usage.Counters // by tenant, as a full read decodes them; never modified in place
	types    usage.TypeCounts          // tenants holding each field, kept as entries come and go
	// lent counts the snapshots holding tenants and types (nil: none since
	// they were made). Decremented by Release from another goroutine.
	lent *atomic.Int32
	// flawed holds what decoding skipped, by tenant, for the few hashes
	// with a skip; the sums below are kept from it.
	flawed    map[string]flaws
	others    *keySet             // usage keys of other periods
	malformed map[string]struct{} // keys that match the glob but do not parse

	wrongType, invalidField, invalidValue, oversized int
}

// flaws is what decoding one usage hash skipped.
type flaws struct {
	wrongType                  bool
	invalidField, invalidValue int
	oversized                  bool
}

// keyEntry is one usage key of the period as read.
type keyEntry struct {
	counters usage.Counters // unreadable markers included
	flaws
}

func newState(periodID string, sizeHint int) *state {
	return &state{
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
func (st *state) put(tenant string, e *keyEntry) {
	old, had := st.tenants[tenant]
	if !had && e == nil {
		return
	}
	if st.lent != nil && st.lent.Load() > 0 {
		st.tenants, st.types = maps.Clone(st.tenants), maps.Clone(st.types)
	}
	// No snapshot holds the maps now; one that releases late must not
	// count against the next lending.
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
func (st *state) addFlaws(f flaws, sign int) {
	if f.wrongType {
		st.wrongType += sign
	}
	st.invalidField += sign * f.invalidField
	st.invalidValue += sign * f.invalidValue
	if f.oversized {
		st.oversized += sign
	}
}

// setOther records whether key, of another period or malformed, exists.
func (st *state) setOther(key string, malformed, exists bool) {
	switch {
	case malformed && exists:
		st.malformed[key] = struct{}{}
	case malformed:
		delete(st.malformed, key)
	case exists:
		st.others.Add(key)
	default:
		st.others.Remove(key)
	}
}

// snapshot renders the state as a full read would return it, lending it
// the state's maps.
func (st *state) snapshot() *usage.Snapshot {
	snap := usage.NewSnapshot(st.periodID)
	snap.Tenants, snap.Types = st.tenants, st.types
	if st.lent == nil {
		st.lent = new(atomic.Int32)
	}
	lent := st.lent
	lent.Add(1)
	snap.Lend(func() { lent.Add(-1) })
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

// keyKind sorts a key the way a full read would.
type keyKind int

const (
	kindIgnored keyKind = iota // not a usage key
	kindMalformed
	kindOther // of another period
	kindCurrent
)

func (st *state) classify(pattern usage.KeyPattern, key string) (keyKind, string) {
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

// decodeEntry decodes an HGETALL reply as a full read does: nil for a key
// that does not exist. skipped is scratch space.
func decodeEntry(reply any, skipped map[usage.Reason]int) (*keyEntry, error) {
	clear(skipped)
	counters, found, err := read.DecodeHGETALL(reply, skipped)
	if err != nil || !found {
		return nil, err
	}
	return &keyEntry{counters: counters, flaws: flaws{wrongType: skipped[usage.ReasonWrongType] > 0,
		invalidField: skipped[usage.ReasonInvalidField], invalidValue: skipped[usage.ReasonInvalidValue],
		oversized: skipped[usage.ReasonOversizedHash] > 0}}, nil
}

// seedSink fills a state from a node read (read.Sink).
type seedSink struct {
	st *state
	mu sync.Mutex // tenants and their sums, shared by the hash readers
}

func (s *seedSink) Other(key string, malformed bool) { s.st.setOther(key, malformed, true) }

func (s *seedSink) Hashes(keys []read.Key, replies []any) error {
	entries := make([]*keyEntry, len(keys))
	skipped := map[usage.Reason]int{}
	for i, r := range replies {
		var err error
		if entries[i], err = decodeEntry(r, skipped); err != nil {
			return fmt.Errorf("HGETALL %q: %w", keys[i].Name, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		s.st.put(k.Tenant, entries[i])
	}
	return nil
}
