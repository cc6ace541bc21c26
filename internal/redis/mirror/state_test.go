package mirror

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

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
			got := map[string]bool{}
			for id, pid := range st.others.All() {
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

// TestOtherKeys checks the set against a map under random additions and
// removals, with more periods at once than it has bits for, so periods
// take bits, free them and overflow, and overflowed periods get bits back;
// tenant ids of 16 bytes and 17 fall either side of shortID.
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
			o, want := newOtherKeys(), map[[2]string]bool{}
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
				o.Set(id, pid, exists)
				if want[[2]string{id, pid}] = exists; !exists {
					delete(want, [2]string{id, pid})
				}
				if o.Len() != len(want) {
					t.Fatalf("op %d: Len = %d, want %d", i, o.Len(), len(want))
				}
			}
			got := map[[2]string]bool{}
			for id, pid := range o.All() {
				if got[[2]string{id, pid}] {
					t.Errorf("%s %s yielded twice", id, pid)
				}
				got[[2]string{id, pid}] = true
			}
			for _, id := range ids {
				for _, pid := range pids {
					if k := [2]string{id, pid}; o.Has(k[0], k[1]) != want[k] {
						t.Errorf("Has(%s, %s) = %v", k[0], k[1], !want[k])
					}
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("All = %d keys, want %d", len(got), len(want))
			}
			if tc.periods > 64 && len(o.extra) == 0 {
				t.Error("no period overflowed")
			}
		})
	}
}
