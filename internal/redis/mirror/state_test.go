package mirror

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestSetOther checks the key count, the other-period set and the
// malformed keys after a sequence of additions and removals.
func TestSetOther(t *testing.T) {
	type op struct {
		key    string
		exists bool
	}
	a, b := "usage:1:"+lastPeriod, "usage:1:202609"
	for _, tc := range []struct {
		name      string
		ops       []op
		keys      []string
		malformed int
	}{
		{"add", []op{{a, true}, {b, true}}, []string{a, b}, 0},
		{"add twice", []op{{a, true}, {a, true}}, []string{a}, 0},
		{"remove absent", []op{{a, true}, {b, false}, {"usage:2:" + lastPeriod, false}}, []string{a}, 0},
		{"remove last of a period", []op{{a, true}, {b, true}, {a, false}}, []string{b}, 0},
		{"remove all", []op{{a, true}, {a, false}}, nil, 0},
		{"malformed", []op{{"usage:x:2026", true}, {"usage::202610", true}, {"usage::202610", false}}, nil, 1},
		{"a tenant with other periods only", []op{{"usage:2:" + lastPeriod, true}, {"usage:2:202609", true}, {"usage:2:202609", false}},
			[]string{"usage:2:" + lastPeriod}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newState(thisPeriod, 0)
			st.put("1", &keyEntry{counters: usage.CountersOf(map[string]int64{"messages": 1})})
			for _, o := range tc.ops {
				st.setOther(pattern, o.key, o.exists)
			}
			snap := st.snapshot()
			if got := snap.Keys - 1; got != len(tc.keys) {
				t.Errorf("other keys = %d, want %d", got, len(tc.keys))
			}
			if got := snap.Skipped[usage.ReasonMalformedKey]; got != tc.malformed {
				t.Errorf("malformed = %d, want %d", got, tc.malformed)
			}
			if c, ok := snap.Tenants.Lookup("1"); snap.Tenants.Len() != 1 || !ok || value(c, "messages") != 1 {
				t.Errorf("tenants of the period: %d, tenant 1 %v %v; want tenant 1 alone", snap.Tenants.Len(), c, ok)
			}
			if _, ok := snap.Tenants.Lookup("2"); ok {
				t.Error("a tenant with keys of other periods only is a tenant of the period")
			}
			if _, _, ok := snap.Tenants.LookupID("2"); ok {
				t.Error("LookupID finds a tenant with keys of other periods only")
			}
			got := map[string]bool{}
			for id, pid := range st.otherKeys() {
				got[pattern.Key(id, pid)] = true
			}
			for _, k := range tc.keys {
				if !got[k] {
					t.Errorf("key %q missing", k)
				}
			}
			if len(got) != len(tc.keys) {
				t.Errorf("keys = %v, want %v", got, tc.keys)
			}
		})
	}
}

// TestOtherKeys checks the keys of other periods against a map under random
// additions and removals, with more periods at once than a mask has bits
// for, so periods take bits, free them and overflow, and overflowed periods
// get bits back; some tenants also come and go in the current period, and
// an entry stays exactly while its tenant has a key somewhere.
func TestOtherKeys(t *testing.T) {
	for _, tc := range []struct {
		name             string
		periods, tenants int
	}{
		{"few periods", 3, 50},
		{"bits freed and reused", 64, 3},
		{"overflow", 90, 20},
		{"overflow, churn", 70, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			st, want, current := newState(thisPeriod, 0), map[[2]string]bool{}, map[string]bool{}
			ids := make([]string, tc.tenants)
			for n := range ids {
				if ids[n] = fmt.Sprint(n); n%3 > 0 {
					ids[n] = strings.Repeat("x", 15+n%3-len(ids[n])) + ids[n]
				}
			}
			pids := make([]string, tc.periods)
			for p := range pids {
				pids[p] = fmt.Sprintf("%04d%02d", 2000+p/12, 1+p%12)
			}
			for i := range 30000 {
				id, pid := ids[rng.IntN(tc.tenants)], pids[rng.IntN(tc.periods)]
				exists := rng.IntN(3) > 0
				if i%10 == 0 {
					var e *keyEntry
					if exists {
						e = &keyEntry{counters: usage.CountersOf(map[string]int64{"messages": int64(i)})}
					}
					st.put(id, e)
					current[id] = exists
					continue
				}
				st.setOtherKey(id, pid, exists)
				if want[[2]string{id, pid}] = exists; !exists {
					delete(want, [2]string{id, pid})
				}
				if st.others.len() != len(want) {
					t.Fatalf("op %d: %d keys, want %d", i, st.others.len(), len(want))
				}
			}
			got := map[[2]string]bool{}
			for id, pid := range st.otherKeys() {
				if got[[2]string{id, pid}] {
					t.Errorf("%s %s yielded twice", id, pid)
				}
				got[[2]string{id, pid}] = true
			}
			for _, id := range ids {
				for _, pid := range pids {
					if k := [2]string{id, pid}; st.hasOther(k[0], k[1]) != want[k] {
						t.Errorf("hasOther(%s, %s) = %v", k[0], k[1], !want[k])
					}
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("otherKeys = %d keys, want %d", len(got), len(want))
			}
			if tc.periods > 64 && len(st.others.extra) == 0 {
				t.Error("no period overflowed")
			}
			entries := map[string]bool{}
			for id, isCurrent := range current {
				entries[id] = isCurrent
			}
			for k := range want {
				if !st.others.extra[k] {
					entries[k[0]] = true
				}
			}
			n := 0
			for id, e := range st.tenants.all() {
				if !entries[id] {
					t.Errorf("tenant %s keeps an entry %+v without a key", id, e)
				}
				if (e.counters != nil) != current[id] {
					t.Errorf("tenant %s: counters %v, want a key of the period: %v", id, e.counters, current[id])
				}
				if e.counters != nil {
					n++
				}
			}
			for id, ok := range entries {
				if st.tenants.get(id) == (entry{}) && ok {
					t.Errorf("tenant %s has a key and no entry", id)
				}
			}
			if snap := st.snapshot(); snap.Tenants.Len() != n || st.current != n {
				t.Errorf("%d tenants of the period, counted %d and %d", n, snap.Tenants.Len(), st.current)
			}
		})
	}
}

// TestStateListsChangesOnceInstalled: a state a full read fills lists no
// changed tenants, since its first snapshot has no base; once installed it
// lists each tenant put, by the id its table holds.
func TestStateListsChangesOnceInstalled(t *testing.T) {
	t.Parallel()
	one := &keyEntry{counters: usage.CountersOf(map[string]int64{"messages": 1})}
	two := &keyEntry{counters: usage.CountersOf(map[string]int64{"messages": 2})}
	st := newState(thisPeriod, 0)
	st.put("1", one)
	st.put("2", one)
	if len(st.changed) != 0 {
		t.Fatalf("a state being filled lists %v as changed", st.changed)
	}
	n := &nodeMirror{m: &Mirror{fullReads: map[string]*atomic.Uint64{reasonStart: new(atomic.Uint64)}}}
	n.install(st, reasonStart)
	if snap := st.snapshot(); len(snap.Changed) != 0 || snap.Tenants.Len() != 2 {
		t.Fatalf("installed: changed %v, %d tenants; want none changed of 2", snap.Changed, snap.Tenants.Len())
	}
	key := "usage:2:" + thisPeriod
	st.put(key[6:7], two)
	st.put("3", one)
	st.put("1", nil)
	snap := st.snapshot()
	if want := []string{"2", "3", "1"}; !slices.Equal(snap.Changed, want) {
		t.Errorf("changed %v, want %v", snap.Changed, want)
	}
	if held, _, _ := snap.Tenants.LookupID("2"); unsafe.StringData(snap.Changed[0]) != unsafe.StringData(held) {
		t.Error("a changed tenant is listed by the caller's id, not the table's")
	}
}
