package billing

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

var joins atomic.Uint64

// join fills r from its usage and plans; it updates prev's tenants in place
// of a full join when both sources name what changed since prev.
func (r *Report) join(defaults plans.Limits, thresholds []float64, prev *Report) {
	r.Seq = joins.Add(1)
	if r.monthly == nil {
		r.monthly = monthlyTypes(nil)
	}
	if !r.UsageUp() {
		return
	}
	r.usageSeq = r.Usage.Seq
	changed, ok := r.changedSince(prev)
	// Past a share of the tenants, sorting the changes costs more than a full join.
	ok = ok && len(changed) <= prev.Tenants.Len()/4
	r.ix = newLimitIndex(r.Plans, defaults)
	if ok && r.Plans.Seq == prev.Plans.Seq {
		r.ix = prev.ix
	}
	if ok {
		r.patch(prev, changed, thresholds)
	} else {
		r.joinAll(thresholds)
	}
	if r.Plans.LimitsKnown() {
		r.PerPlan = r.counts.perPlan(r.Plans.Catalog)
		r.OverThreshold = r.counts.overThreshold(r.Plans.Catalog, defaults, thresholds)
	}
}

// changedSince returns the sorted tenants that may differ from prev's, and
// false when prev is no base for r.
func (r *Report) changedSince(prev *Report) ([]string, bool) {
	switch {
	case prev == nil || prev.Period.ID != r.Period.ID || r.Usage.Base == 0 || r.Usage.Base != prev.usageSeq,
		!maps.Equal(prev.others, r.others), prev.Plans.LimitsKnown() != r.Plans.LimitsKnown():
		return nil, false
	case r.Plans.Seq == prev.Plans.Seq:
		return sortedSet(r.Usage.Changed, nil), true
	case r.Plans.Seq == prev.Plans.Seq+1:
		return sortedSet(r.Usage.Changed, r.Plans.Changed), true
	}
	return nil, false
}

func sortedSet(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// patch rebuilds prev's changed tenants in copies of the chunks that hold
// them, sharing every other chunk with prev; a chunk that grows past
// maxChunk is split, one left empty is dropped.
func (r *Report) patch(prev *Report, changed []string, thresholds []float64) {
	used, cat, old := r.Usage.Tenants, r.Plans.Catalog, prev.Tenants
	r.counts = prev.counts.clone()
	type change struct {
		at       int  // where the tenant is or would be in old
		had, has bool // in old, in either source now
		now      status
	}
	changes := make([]change, len(changed))
	missing := map[string]*Terms{}
	for k, id := range changed {
		c := &changes[k]
		c.at = old.Search(id)
		if c.had = c.at < old.Len() && old.At(c.at).ID == id; c.had {
			id = old.At(c.at).ID
		}
		counters, inUse := used.Lookup(id)
		row, inCat := cat.Tenant(id)
		if c.has = inUse || inCat; c.has {
			c.now.TenantStatus = TenantStatus{ID: id, Usage: counters, Terms: r.ix.termsOf(row.Plan, missing)}
			c.now.rank = c.now.rankKey()
		}
	}
	chunks := make([][]status, 0, len(old.chunks)+1)
	next := 0 // the first change not applied
	for ch, chunk := range old.chunks {
		lo, hi := old.start(ch), old.start(ch)+len(chunk)
		if ch == len(old.chunks)-1 {
			hi++ // tenants after the last join in the last chunk
		}
		last := next
		for last < len(changes) && changes[last].at < hi {
			last++
		}
		if last == next {
			chunks = append(chunks, chunk)
			continue
		}
		size := len(chunk)
		for _, c := range changes[next:last] {
			if c.has {
				size++
			}
			if c.had {
				size--
			}
		}
		out := make([]status, 0, size)
		k := 0 // the next of chunk
		for _, c := range changes[next:last] {
			out = append(out, chunk[k:c.at-lo]...)
			k = c.at - lo
			if c.had {
				r.counts.add(&chunk[k].TenantStatus, thresholds, -1)
				k++
			}
			if c.has {
				out = append(out, c.now)
				r.counts.add(&out[len(out)-1].TenantStatus, thresholds, 1)
			}
		}
		out = append(out, chunk[k:]...)
		chunks = appendChunks(chunks, out)
		next = last
	}
	var added []status // to a join of no tenants
	for _, c := range changes[next:] {
		if c.has {
			added = append(added, c.now)
			r.counts.add(&added[len(added)-1].TenantStatus, thresholds, 1)
		}
	}
	chunks = appendChunks(chunks, slices.Clip(added))
	r.Tenants = statusesOf(chunks)
	r.Base, r.Changed = prev.Seq, changed
}

// appendChunks appends out as chunks of at most maxChunk statuses, each an
// allocation of its own; nothing when out is empty.
func appendChunks(chunks [][]status, out []status) [][]status {
	if len(out) <= maxChunk {
		if len(out) > 0 {
			chunks = append(chunks, out)
		}
		return chunks
	}
	for len(out) > 0 {
		n := min(chunkLen, len(out))
		if len(out)-n < chunkLen/2 {
			n = len(out) // no small last piece
		}
		chunks = append(chunks, slices.Clone(out[:n]))
		out = out[n:]
	}
	return chunks
}

// joinAll joins every tenant of the usage state and the catalog: the
// catalog's in its order, then those without a row merged in.
func (r *Report) joinAll(thresholds []float64) {
	used, cat := r.Usage.Tenants, r.Plans.Catalog
	r.counts = newFleetCounts()
	listed, withUsage := r.joinEach(cat.Len(), thresholds, func(i int, missing map[string]*Terms) (TenantStatus, bool) {
		row := cat.At(i)
		id, counters, ok := used.LookupID(row.ID)
		if !ok {
			id = strings.Clone(row.ID)
		}
		return TenantStatus{ID: id, Usage: counters, Terms: r.ix.termsOf(row.Plan, missing)}, ok
	})
	if withUsage == used.Len() {
		r.Tenants = listed
		return
	}
	rest := unlisted(used, cat, used.Len()-withUsage)
	others, _ := r.joinEach(len(rest), thresholds, func(i int, _ map[string]*Terms) (TenantStatus, bool) {
		return TenantStatus{ID: rest[i].id, Usage: rest[i].counters, Terms: r.ix.noPlan}, true
	})
	r.Tenants = mergeStatuses(listed, others)
}

// joinEach returns n statuses, status(i) the i-th, counted in r.counts, and
// how many of them status reported true for; it splits them over the cores.
func (r *Report) joinEach(n int, thresholds []float64, status func(i int, missing map[string]*Terms) (TenantStatus, bool)) (Statuses, int) {
	out := newStatuses(n)
	parts := splitEven(n, runtime.GOMAXPROCS(0))
	counts := make([]fleetCounts, len(parts)-1)
	trues := make([]int, len(parts)-1)
	eachPart(parts, func(lo, hi int) {
		p := slices.Index(parts, lo)
		missing, c := map[string]*Terms{}, newFleetCounts()
		for i := lo; i < hi; i++ {
			t, ok := status(i, missing)
			out.set(i, t)
			c.add(out.At(i), thresholds, 1)
			if ok {
				trues[p]++
			}
		}
		counts[p] = c
	})
	total := 0
	for p := range counts {
		r.counts.merge(counts[p])
		total += trues[p]
	}
	return out, total
}

func catalogPlans(cat *plans.Catalog) map[string]plans.Plan {
	if cat == nil {
		return nil
	}
	return cat.Plans
}

// unlistedTenant is a tenant of the usage state without a catalog row.
type unlistedTenant struct {
	id       string
	counters usage.Counters
}

// unlisted returns the n tenants of the usage state without a catalog row,
// sorted by id.
func unlisted(used usage.Tenants, cat *plans.Catalog, n int) []unlistedTenant {
	out := make([]unlistedTenant, 0, n)
	for id, counters := range used.All() {
		if _, ok := cat.Tenant(id); !ok {
			out = append(out, unlistedTenant{id, counters})
		}
	}
	parts := splitEven(len(out), runtime.GOMAXPROCS(0))
	eachPart(parts, func(lo, hi int) { slices.SortFunc(out[lo:hi], compareUnlisted) })
	return mergeSorted(out, parts)
}

func compareUnlisted(a, b unlistedTenant) int { return strings.Compare(a.id, b.id) }

// splitEven returns part bounds.
func splitEven(n, k int) []int {
	const minPart = 4096
	k = max(1, min(k, n/minPart))
	bounds := make([]int, k+1)
	for i := range bounds {
		bounds[i] = i * n / k
	}
	return bounds
}

func eachPart(bounds []int, f func(lo, hi int)) {
	var wg sync.WaitGroup
	for i := 0; i+1 < len(bounds); i++ {
		wg.Go(func() { f(bounds[i], bounds[i+1]) })
	}
	wg.Wait()
}

func mergeSorted(s []unlistedTenant, bounds []int) []unlistedTenant {
	for len(bounds) > 2 {
		out := make([]unlistedTenant, 0, len(s))
		next := []int{0}
		for i := 0; i+1 < len(bounds); i += 2 {
			// An odd last part merges with nothing.
			mid, hi := bounds[i+1], bounds[min(i+2, len(bounds)-1)]
			a, b := s[bounds[i]:mid], s[mid:hi]
			for len(a) > 0 && len(b) > 0 {
				if a[0].id < b[0].id {
					out, a = append(out, a[0]), a[1:]
				} else {
					out, b = append(out, b[0]), b[1:]
				}
			}
			out = append(append(out, a...), b...)
			next = append(next, len(out))
		}
		s, bounds = out, next
	}
	return s
}

// fleetCounts are the tenants per plan and over each threshold per limit
// type, kept by adding and removing statuses.
type fleetCounts struct {
	plans map[string]int
	over  map[string][]int
}

func newFleetCounts() fleetCounts {
	return fleetCounts{plans: map[string]int{}, over: map[string][]int{}}
}

func (c fleetCounts) clone() fleetCounts {
	out := fleetCounts{plans: maps.Clone(c.plans), over: make(map[string][]int, len(c.over))}
	for lt, n := range c.over {
		out.over[lt] = slices.Clone(n)
	}
	return out
}

func (c fleetCounts) merge(o fleetCounts) {
	for id, n := range o.plans {
		c.plans[id] += n
	}
	for lt, n := range o.over {
		if c.over[lt] == nil {
			c.over[lt] = make([]int, len(n))
		}
		for k := range n {
			c.over[lt][k] += n[k]
		}
	}
}

func (c fleetCounts) add(t *TenantStatus, thresholds []float64, delta int) {
	c.plans[t.PlanID] += delta
	t.EachLimit(func(lt string, _ int64, pct float64) {
		n := c.over[lt]
		if n == nil {
			n = make([]int, len(thresholds))
			c.over[lt] = n
		}
		for k, th := range thresholds {
			if pct >= th {
				n[k] += delta
			}
		}
	})
}

func (c fleetCounts) perPlan(cat *plans.Catalog) []PlanCount {
	var out []PlanCount
	if cat != nil {
		for _, id := range slices.Sorted(maps.Keys(cat.Plans)) {
			out = append(out, PlanCount{PlanID: id, PlanName: cat.Plans[id].Name, Tenants: c.plans[id]})
		}
	}
	// Plans without a row count too.
	for _, id := range slices.Sorted(maps.Keys(c.plans)) {
		if _, ok := catalogPlans(cat)[id]; !ok && id != NoPlanID && id != "" && c.plans[id] > 0 {
			out = append(out, PlanCount{PlanID: id, Tenants: c.plans[id]})
		}
	}
	return append(out, PlanCount{PlanID: NoPlanID, Tenants: c.plans[NoPlanID]})
}

// overThreshold counts zeros too, for alerts.
func (c fleetCounts) overThreshold(cat *plans.Catalog, defaults plans.Limits, thresholds []float64) []ThresholdCount {
	types := slices.Collect(maps.Keys(defaults))
	if cat != nil {
		for _, p := range cat.Plans {
			types = slices.AppendSeq(slices.AppendSeq(types, maps.Keys(p.Limits)), maps.Keys(p.Unreadable))
		}
	}
	slices.Sort(types)
	var out []ThresholdCount
	for _, lt := range slices.Compact(types) {
		for k, th := range thresholds {
			n := 0
			if c.over[lt] != nil {
				n = c.over[lt][k]
			}
			out = append(out, ThresholdCount{LimitType: lt, Threshold: th, Tenants: n})
		}
	}
	return out
}
