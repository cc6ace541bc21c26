package mirror

import (
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
	"unsafe"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestTenantTableMatchesAMap puts and removes tenants at random and checks
// the table against a map after each step: removals from the middle of
// runs of slots are what an index of this kind gets wrong.
func TestTenantTableMatchesAMap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		ids, steps    int
		removeOneIn   int
		sizeHint      int
		checkEachStep bool
	}{
		{"few ids, many removals", 20, 5000, 2, 0, true},
		{"grows from empty", 3000, 6000, 8, 0, false},
		{"sized ahead", 3000, 6000, 3, 4000, false},
		{"shrinks", 500, 4000, 1, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(tc.ids), uint64(tc.steps)))
			tab, want := newTenantTable(tc.sizeHint), map[string]entry{}
			for step := range tc.steps {
				id := strconv.Itoa(rng.IntN(tc.ids))
				if rng.IntN(tc.removeOneIn+1) == 0 {
					tab.remove(id)
					delete(want, id)
				} else {
					e := entry{others: uint64(step) + 1}
					if got := tab.put(id, e); got != id {
						t.Fatalf("put(%q) holds %q", id, got)
					}
					want[id] = e
				}
				if tc.checkEachStep || step == tc.steps-1 {
					checkTable(t, tab, want)
				}
			}
		})
	}
}

func checkTable(t *testing.T, tab *tenantTable, want map[string]entry) {
	t.Helper()
	if tab.Len() != len(want) {
		t.Fatalf("Len() = %d, want %d", tab.Len(), len(want))
	}
	for id, e := range want {
		if got := tab.get(id); got != e {
			t.Fatalf("get(%q) = %v, want %v", id, got, e)
		}
	}
	if got := maps.Collect(tab.all()); !maps.Equal(got, want) {
		t.Fatalf("all() = %v, want %v", got, want)
	}
	if got := tab.get("absent"); got != (entry{}) {
		t.Fatalf("get of an absent tenant = %v", got)
	}
	if tab.Len() > len(tab.slots)/4*3 {
		t.Fatalf("%d slots for %d tenants: fuller than three quarters", len(tab.slots), tab.Len())
	}
}

// TestTenantTableCloneIsItsOwn: a lent table is cloned before a change,
// so a clone must share nothing the change writes.
func TestTenantTableCloneIsItsOwn(t *testing.T) {
	t.Parallel()
	tab := newTenantTable(0)
	for i := range 100 {
		tab.put(strconv.Itoa(i), entry{others: 1})
	}
	lent := tab.clone()
	tab.put("1", entry{others: 2})
	tab.remove("2")
	tab.put("new", entry{others: 3})
	if lent.get("1").others != 1 || lent.get("2").others != 1 || lent.get("new").others != 0 || lent.Len() != 100 {
		t.Error("a change to a table shows in its clone")
	}
}

// TestTenantTableKeepsTheIDItHolds: replacing an entry keeps the id the
// table holds, so that a caller's id, maybe a slice of a larger string, is
// not kept.
func TestTenantTableKeepsTheIDItHolds(t *testing.T) {
	t.Parallel()
	tab := newTenantTable(0)
	held := tab.put("42", entry{others: 1})
	key := "usage:42:202612"
	if got := tab.put(key[6:8], entry{others: 2}); unsafe.StringData(got) != unsafe.StringData(held) ||
		unsafe.StringData(tab.ids[0]) != unsafe.StringData(held) {
		t.Errorf("put of a replaced entry holds %q", got)
	}
	view := tenantView{tab, 1}
	tab.put("7", entry{counters: usage.CountersOf(map[string]int64{"messages": 1})})
	view.n = 2
	if id, c, ok := view.LookupID(key[6:8]); ok || id != "" || c != nil {
		t.Errorf("LookupID(42), a tenant without counters = %q, %v, %v", id, c, ok)
	}
	seven := "usage:7:202612"[6:7]
	if id, c, ok := view.LookupID(seven); !ok || id != "7" || c == nil || unsafe.StringData(id) != unsafe.StringData(tab.ids[1]) {
		t.Errorf("LookupID(7) = %q, %v, %v: want the table's id", id, c, ok)
	}
}
