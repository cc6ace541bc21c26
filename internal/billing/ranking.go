package billing

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Ranked is one tenant's place in a Ranking.
type Ranked struct {
	Index    int     // in Report.Tenants
	Pressure float64 // the highest percentage of the ranked limit types
	Band     Band    // the highest band of the ranked limit types
	Top      string  // the most pressed limit type (see MostPressedLimit)
}

// rankings memoises a report's orders, one per set of limit types.
type rankings struct {
	mu     sync.Mutex
	byType map[string]*ranking
}

type ranking struct {
	once sync.Once
	list []Ranked
}

// maxRankings bounds the orders a report keeps; others are computed per call.
const maxRankings = 16

// Ranking returns the tenants with a percentage of any of types (nil:
// every type), most pressed first: by Pressure, then Band, then id. Each
// order is computed once per report; the caller must not modify it.
func (r *Report) Ranking(types []string) []Ranked {
	key := ""
	if types != nil {
		types = slices.Compact(slices.Sorted(slices.Values(types)))
		key = "\x00" + strings.Join(types, "\x00")
	}
	r.rankings.mu.Lock()
	if r.rankings.byType == nil {
		r.rankings.byType = map[string]*ranking{}
	}
	rk, ok := r.rankings.byType[key]
	if !ok {
		rk = &ranking{}
		if len(r.rankings.byType) < maxRankings {
			r.rankings.byType[key] = rk
		}
	}
	r.rankings.mu.Unlock()
	rk.once.Do(func() { rk.list = r.rank(types) })
	return rk.list
}

func (r *Report) rank(types []string) []Ranked {
	entries := make([]Ranked, r.Tenants.Len())
	has := make([]bool, r.Tenants.Len())
	eachPart(splitEven(r.Tenants.Len(), runtime.GOMAXPROCS(0)), func(lo, hi int) {
		for i, t := range r.Tenants.Range(lo, hi) {
			e, topPct := Ranked{Index: i, Pressure: -1}, -1.0
			t.EachLimit(func(lt string, limit int64, pct float64) {
				if types != nil {
					if _, ok := slices.BinarySearch(types, lt); !ok {
						return
					}
				}
				used, _ := t.Usage.Value(lt)
				s := standing(lt, used, limit, r.monthly[lt], r.Period, r.At)
				if morePressed(s.Band, pct, e.Band, topPct) {
					e.Band, e.Top, topPct = s.Band, lt, pct
				}
				e.Pressure = max(e.Pressure, pct)
			})
			entries[i], has[i] = e, e.Pressure >= 0
		}
	})
	// The ids ride along, so that ties cost no lookup of a status.
	type withID struct {
		Ranked
		id string
	}
	sorted := make([]withID, 0, len(entries))
	for i, t := range r.Tenants.All() {
		if has[i] {
			sorted = append(sorted, withID{entries[i], t.ID})
		}
	}
	slices.SortFunc(sorted, func(a, b withID) int { return compareRanked(a.Ranked, b.Ranked, a.id, b.id) })
	out := make([]Ranked, len(sorted))
	for i := range sorted {
		out[i] = sorted[i].Ranked
	}
	return out
}

// CompareRanked orders a and b as Ranking does.
func (r *Report) CompareRanked(a, b Ranked) int {
	return compareRanked(a, b, r.Tenants.At(a.Index).ID, r.Tenants.At(b.Index).ID)
}

func compareRanked(a, b Ranked, idA, idB string) int {
	return cmp.Or(cmp.Compare(b.Pressure, a.Pressure), cmp.Compare(b.Band, a.Band), strings.Compare(idA, idB))
}

// RankedAfter returns the position in rk, a Ranking of r, of the first
// tenant ranked after one at pressure and band with id tenantID.
func (r *Report) RankedAfter(rk []Ranked, pressure float64, band Band, tenantID string) int {
	i, _ := slices.BinarySearchFunc(rk, struct{}{}, func(e Ranked, _ struct{}) int {
		c := cmp.Or(cmp.Compare(pressure, e.Pressure), cmp.Compare(band, e.Band),
			strings.Compare(r.Tenants.At(e.Index).ID, tenantID))
		if c == 0 {
			return -1 // the cursor's own tenant comes before
		}
		return c
	})
	return i
}
