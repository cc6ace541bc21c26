package billing

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"unsafe"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestJoinReuse: a join that updates the last one with the change sets of
// the usage and the plans gives exactly what a join from scratch gives,
// whatever changed in between, and names the tenants it changed.
func TestJoinReuse(t *testing.T) {
	catalog := func() *plans.Catalog {
		cat := plans.NewCatalog()
		cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 100, "users": 5}}
		cat.Plans["2"] = plans.Plan{ID: "2", Name: "pro", Limits: plans.Limits{"messages": 1000, "storage": 1 << 20},
			Unreadable: map[string]string{"users": "negative_limit"}}
		for i := range 50 {
			cat.SetTenant(plans.Tenant{ID: strconv.Itoa(i), Plan: []string{"1", "2", "", "9"}[i%4]}) // 9: a plan without a row
			if i%3 == 0 {
				setName(cat, strconv.Itoa(i), "Tenant "+strconv.Itoa(i))
			}
		}
		return cat
	}
	counters := func() map[string]usage.Counters {
		m := map[string]usage.Counters{}
		for i := range 60 { // 10 without a row in the catalog
			fields := map[string]int64{"messages": int64(i * 7), "users": int64(i % 6), "storage": int64(i) << 14}
			if i%9 == 0 {
				fields["messages"] = usage.UnreadableValue(usage.ReasonInvalidValue)
			}
			m[strconv.Itoa(i)] = usage.CountersOf(fields)
		}
		m["w"] = usage.UnreadableHash(usage.ReasonWrongType)
		return m
	}
	defaults := plans.Limits{"messages": 10}

	for _, tc := range []struct {
		name   string
		change func(used map[string]usage.Counters, cat *plans.Catalog) // the second read's changes
		noCat  bool
	}{
		{name: "nothing changed"},
		{name: "counters changed", change: func(used map[string]usage.Counters, _ *plans.Catalog) {
			used["3"] = usage.CountersOf(map[string]int64{"messages": 99, "users": 6})
			used["4"] = usage.CountersOf(map[string]int64{"messages": 1})
			used["7"] = usage.CountersOf(map[string]int64{"users": 1})
			used["w"] = usage.CountersOf(map[string]int64{"messages": 5})
		}},
		{name: "tenant's plan changed", change: func(_ map[string]usage.Counters, cat *plans.Catalog) {
			for id, plan := range map[string]string{"1": "1", "2": "1", "3": "", "0": "2"} {
				setPlan(cat, id, plan)
			}
		}},
		{name: "a plan's limits changed", change: func(_ map[string]usage.Counters, cat *plans.Catalog) {
			cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 50, "users": 5}}
		}},
		{name: "a plan renamed", change: func(_ map[string]usage.Counters, cat *plans.Catalog) {
			cat.Plans["2"] = plans.Plan{ID: "2", Name: "Pro", Limits: cat.Plans["2"].Limits, Unreadable: cat.Plans["2"].Unreadable}
		}},
		{name: "tenants renamed, named and unnamed", change: func(_ map[string]usage.Counters, cat *plans.Catalog) {
			setName(cat, "3", "Padaria Estrela")
			setName(cat, "4", "Globex")
			setName(cat, "6", "")
		}},
		{name: "tenant gone from usage", change: func(used map[string]usage.Counters, _ *plans.Catalog) {
			delete(used, "5")
			delete(used, "55") // and from everything
		}},
		{name: "tenant new in usage", change: func(used map[string]usage.Counters, _ *plans.Catalog) {
			used["new"] = usage.CountersOf(map[string]int64{"messages": 1})
		}},
		{name: "tenant swapped for another", change: func(used map[string]usage.Counters, _ *plans.Catalog) {
			used["new"] = used["55"]
			delete(used, "55")
		}},
		{name: "tenant new in the catalog", change: func(_ map[string]usage.Counters, cat *plans.Catalog) {
			cat.SetTenant(plans.Tenant{ID: "only-plans", Plan: "1"})
		}},
		{name: "tenant gone from the catalog", change: func(_ map[string]usage.Counters, cat *plans.Catalog) {
			cat.RemoveTenant("6")
		}},
		{name: "no plans source", noCat: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			used1, cat1 := counters(), catalog()
			ps := func(cat *plans.Catalog) PlansState {
				if tc.noCat {
					return PlansState{}
				}
				return PlansState{Configured: true, Source: "postgres", Up: true, Catalog: cat}
			}
			snap := func(used map[string]usage.Counters) *usage.Snapshot {
				s := usage.NewSnapshot("202611")
				s.Tenants = usage.TenantMap(used)
				return s
			}
			first := &Report{Usage: snap(used1), Plans: ps(cat1)}
			first.Usage.Seq = usage.NextSeq()
			first.Plans.Seq = 1
			first.join(defaults, DefaultThresholds, nil)
			held := slices.Collect(func(yield func(status) bool) {
				for i := range first.Tenants.Len() {
					if !yield(*first.Tenants.at(i)) {
						return
					}
				}
			})

			// The second read shares the unchanged counters, as the
			// mirror does, and has a catalog of its own.
			used2, cat2 := maps.Clone(used1), catalog()
			if tc.change != nil {
				tc.change(used2, cat2)
			}
			reused := &Report{Usage: snap(used2), Plans: ps(cat2)}
			reused.Usage.Base = first.Usage.Seq
			for id := range used1 {
				if used2[id] != used1[id] {
					reused.Usage.Changed = append(reused.Usage.Changed, id)
				}
			}
			for id := range used2 {
				if _, ok := used1[id]; !ok {
					reused.Usage.Changed = append(reused.Usage.Changed, id)
				}
			}
			reused.Plans.Seq, reused.Plans.Changed = 2, plans.Diff(cat1, cat2)
			if tc.noCat {
				reused.Plans.Seq, reused.Plans.Changed = 1, nil
			}
			reused.join(defaults, DefaultThresholds, first)
			if reused.Base != first.Seq {
				t.Errorf("base %d, want the first join, %d", reused.Base, first.Seq)
			}
			fresh := &Report{Usage: snap(used2), Plans: ps(cat2)}
			fresh.join(defaults, DefaultThresholds, nil)

			// A reader still holding the first join sees it as it was.
			for i, was := range held {
				if now := *first.Tenants.at(i); !reflect.DeepEqual(now, was) {
					t.Fatalf("the join changed its base's tenant %d: %+v, was %+v", i, now, was)
				}
			}

			if reused.Tenants.Len() != fresh.Tenants.Len() {
				t.Fatalf("%d tenants joined, want %d", reused.Tenants.Len(), fresh.Tenants.Len())
			}
			for i := range fresh.Tenants.Len() {
				if !reflect.DeepEqual(*reused.Tenants.At(i), *fresh.Tenants.At(i)) || reused.Tenants.at(i).rank != fresh.Tenants.at(i).rank {
					t.Errorf("tenant %d:\n got %+v\nwant %+v", i, *reused.Tenants.At(i), *fresh.Tenants.At(i))
				}
			}
			// Changed names every tenant whose status differs, came or
			// went, in order.
			was := map[string]TenantStatus{}
			for _, st := range first.Tenants.All() {
				was[st.ID] = *st
			}
			for _, st := range reused.Tenants.All() {
				if old, ok := was[st.ID]; (!ok || !reflect.DeepEqual(old, *st)) && !slices.Contains(reused.Changed, st.ID) {
					t.Errorf("tenant %s changed or came and is not in Changed %v", st.ID, reused.Changed)
				}
				delete(was, st.ID)
			}
			for id := range was {
				if !slices.Contains(reused.Changed, id) {
					t.Errorf("tenant %s went and is not in Changed %v", id, reused.Changed)
				}
			}
			if !slices.IsSorted(reused.Changed) {
				t.Errorf("Changed %v not in order", reused.Changed)
			}
			// Only chunks holding or losing a changed tenant are copies.
			base := map[*status]bool{}
			for _, chunk := range first.Tenants.chunks {
				base[&chunk[0]] = true
			}
			copies := 0
			for _, chunk := range reused.Tenants.chunks {
				shared := base[&chunk[0]]
				touched := slices.ContainsFunc(chunk, func(st status) bool { return slices.Contains(reused.Changed, st.ID) })
				if shared && touched {
					t.Errorf("a chunk holding a changed tenant (%s–%s) is shared with the base", chunk[0].ID, chunk[len(chunk)-1].ID)
				}
				if !shared {
					copies++
				}
			}
			if copies > len(reused.Changed) {
				t.Errorf("%d chunks copied for %d changed tenants", copies, len(reused.Changed))
			}
			for i := range fresh.Tenants.Len() {
				id := fresh.Tenants.At(i).ID
				if want, _ := cat2.Tenant(id); !tc.noCat && reused.TenantName(id) != want.Name {
					t.Errorf("tenant %s named %q, want %q", id, reused.TenantName(id), want.Name)
				}
			}
			// A status's id is the usage state's or a copy: one of the
			// catalog's would keep its whole table alive.
			for _, rep := range []*Report{first, reused, fresh} {
				for _, st := range rep.Tenants.All() {
					if sharesMemory(cat1, st.ID) || sharesMemory(cat2, st.ID) {
						t.Errorf("tenant %s's id is the catalog's", st.ID)
					}
				}
			}
			if !reflect.DeepEqual(reused.PerPlan, fresh.PerPlan) || !reflect.DeepEqual(reused.OverThreshold, fresh.OverThreshold) {
				t.Errorf("fleet counts differ:\n got %v %v\nwant %v %v", reused.PerPlan, reused.OverThreshold, fresh.PerPlan, fresh.OverThreshold)
			}
		})
	}
}

// sharesMemory reports whether s lies in the memory of cat's tenants.
func sharesMemory(cat *plans.Catalog, s string) bool {
	if cat.Len() == 0 || s == "" {
		return false
	}
	first, last := cat.At(0), cat.At(cat.Len()-1)
	lo := uintptr(unsafe.Pointer(unsafe.StringData(first.ID)))
	hi := uintptr(unsafe.Pointer(unsafe.StringData(last.ID))) + uintptr(len(last.ID)+len(last.Name))
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	return p >= lo && p < hi
}

// TestPatchCopiesOnlyTheChunksItChanges: a join where tenants come or go
// copies only the chunks holding them and equals a join from scratch,
// through repeated arrivals into one chunk.
func TestPatchCopiesOnlyTheChunksItChanges(t *testing.T) {
	t.Parallel()
	const n = 200
	id := func(i int) string { return "t" + strconv.Itoa(1000+i) }
	for _, tc := range []struct {
		name         string
		add, remove  []int // tenant numbers; added ones are n and above
		rounds       int   // the change repeated on each join's result
		maxCopiedPer int   // statuses copied per round, at most
		dropsChunk   bool  // none copied: a chunk goes whole
		atTheEnd     bool  // added ones sort after every tenant
	}{
		{name: "one arrives", add: []int{n}, rounds: 1, maxCopiedPer: maxChunk},
		{name: "one leaves", remove: []int{17}, rounds: 1, maxCopiedPer: maxChunk},
		{name: "one arrives, one leaves, apart", add: []int{n + 1}, remove: []int{150}, rounds: 1, maxCopiedPer: 2 * maxChunk},
		{name: "arrivals split a chunk", add: []int{n + 2}, rounds: 40, maxCopiedPer: maxChunk + 1},
		{name: "arrivals after the last tenant", add: []int{n + 3}, rounds: 40, maxCopiedPer: maxChunk + 1, atTheEnd: true},
		{name: "a chunk's every tenant leaves", remove: []int{16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}, rounds: 1, dropsChunk: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			used := map[string]usage.Counters{}
			for i := range n {
				used[id(i)] = usage.CountersOf(map[string]int64{"messages": int64(i)})
			}
			cat := plans.NewCatalog()
			defaults := plans.Limits{"messages": 100}
			report := func(prev *Report, changed []string) *Report {
				s := usage.NewSnapshot("202611")
				s.Tenants, s.Seq, s.Changed = usage.TenantMap(maps.Clone(used)), usage.NextSeq(), changed
				if prev != nil {
					s.Base = prev.Usage.Seq
				}
				r := &Report{Usage: s, Plans: PlansState{Configured: true, Source: "postgres", Up: true, Catalog: cat, Seq: 1}}
				r.join(defaults, DefaultThresholds, prev)
				return r
			}
			last := report(nil, nil)
			next := n + 10
			for round := range tc.rounds {
				var changed []string
				for _, k := range tc.add {
					if round > 0 {
						k, next = next, next+1 // another tenant into the same chunk each round
					}
					// Ids that sort right after tenant 5, in the first
					// chunk, or after every tenant.
					added := id(5) + "x" + strconv.Itoa(k)
					if tc.atTheEnd {
						added = "u" + strconv.Itoa(k)
					}
					changed = append(changed, added)
					used[changed[len(changed)-1]] = usage.CountersOf(map[string]int64{"messages": 7})
				}
				for _, k := range tc.remove {
					if round == 0 {
						delete(used, id(k))
						changed = append(changed, id(k))
					}
				}
				got := report(last, changed)
				fresh := report(nil, nil)
				if got.Tenants.Len() != fresh.Tenants.Len() {
					t.Fatalf("round %d: %d tenants, want %d", round, got.Tenants.Len(), fresh.Tenants.Len())
				}
				for i, st := range fresh.Tenants.All() {
					if g := got.Tenants.at(i); !reflect.DeepEqual(g.TenantStatus, *st) || g.rank != fresh.Tenants.at(i).rank {
						t.Fatalf("round %d, tenant %d: got %+v, want %+v", round, i, g.TenantStatus, *st)
					}
					if got.Tenants.Search(st.ID) != i {
						t.Fatalf("round %d: search(%s) = %d, want %d", round, st.ID, got.Tenants.Search(st.ID), i)
					}
				}
				if !reflect.DeepEqual(got.PerPlan, fresh.PerPlan) || !reflect.DeepEqual(got.OverThreshold, fresh.OverThreshold) {
					t.Errorf("round %d: fleet counts %v %v, want %v %v", round, got.PerPlan, got.OverThreshold, fresh.PerPlan, fresh.OverThreshold)
				}
				shared := map[*status]bool{}
				for _, chunk := range last.Tenants.chunks {
					shared[&chunk[0]] = true
				}
				copied := 0
				for _, chunk := range got.Tenants.chunks {
					if len(chunk) == 0 || len(chunk) > maxChunk {
						t.Fatalf("round %d: a chunk of %d", round, len(chunk))
					}
					if !shared[&chunk[0]] {
						copied += len(chunk)
					}
				}
				switch {
				case tc.dropsChunk && (copied != 0 || len(got.Tenants.chunks) != len(last.Tenants.chunks)-1):
					t.Errorf("round %d: %d statuses copied and %d chunks, want none and %d", round, copied, len(got.Tenants.chunks), len(last.Tenants.chunks)-1)
				case !tc.dropsChunk && (copied == 0 || copied > tc.maxCopiedPer):
					t.Errorf("round %d: %d statuses copied, want 1 to %d", round, copied, tc.maxCopiedPer)
				}
				last = got
			}
			// Arrivals grow a chunk until it splits in two: no chunk of one.
			chunks := (n + chunkLen - 1) / chunkLen
			if most := chunks + tc.rounds/(chunkLen/2) + 1; tc.rounds > 1 && (len(last.Tenants.chunks) <= chunks || len(last.Tenants.chunks) > most) {
				t.Errorf("%d chunks after %d arrivals into one, want a split: %d to %d", len(last.Tenants.chunks), tc.rounds, chunks+1, most)
			}
		})
	}
}
