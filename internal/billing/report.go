package billing

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// NoPlanID is the plan of planless tenants.
const NoPlanID = "none"

// PlansState describes a join's plans: the last read of the source.
type PlansState struct {
	Configured bool
	Source     string
	Up         bool
	Err        error
	Duration   time.Duration
	Catalog    *plans.Catalog
	LoadedAt   time.Time
	Changed    []string // tenants whose terms the last load changed
}

// Stale reports a catalog from an older read.
func (p PlansState) Stale() bool { return p.Configured && !p.Up && p.Catalog != nil }

// LimitsKnown reports whether limits can be stated.
func (p PlansState) LimitsKnown() bool { return !p.Configured || p.Catalog != nil }

// TenantStatus joins a tenant with its limits.
type TenantStatus struct {
	ID     string
	Usage  usage.Counters
	*Terms // shared: never modified
}

// Terms are a tenant's plan terms.
type Terms struct {
	LimitsKnown      bool
	UsingDefaults    bool
	PlanUnknown      bool
	PlanID           string
	PlanName         string
	Limits           plans.Limits
	UnreadableLimits map[string]string

	limits []LimitCheck // sorted by type
}

// NewTerms prepares t for a TenantStatus.
func NewTerms(t Terms, source string) *Terms {
	if t.LimitsKnown {
		t.limits = sortedLimits(t.Limits, t.UnreadableLimits, source)
	}
	return &t
}

const messagesType = "messages"

// LimitCheck is one limit.
type LimitCheck struct {
	Type        string
	Limit       int64
	Unavailable *Unavailable
}

// Unavailable says why a figure is missing.
type Unavailable struct {
	Source string
	Reason string
}

// UsageSource is the Redis Source.
const UsageSource = "redis"

// Is reports unavailability.
func (u Unavailable) Is() bool { return u.Reason != "" }

// Percentage returns 100 × used / limit.
func (t *TenantStatus) Percentage(limitType string) (float64, bool) {
	if !t.LimitsKnown || t.Unavailable(limitType).Is() {
		return 0, false
	}
	limit, ok := t.Limits[limitType]
	if !ok || limit <= 0 {
		return 0, false
	}
	used, _ := t.Usage.Value(limitType)
	return percentage(used, limit), true
}

// Unavailable says why metricType has no figures.
func (t *TenantStatus) Unavailable(metricType string) Unavailable {
	for _, c := range t.limits {
		if c.Type == metricType && c.Unavailable != nil {
			return *c.Unavailable
		}
	}
	if reason, ok := t.Usage.Unreadable(metricType); ok {
		return Unavailable{Source: UsageSource, Reason: string(reason)}
	}
	return Unavailable{}
}

// EachLimit calls f for limits with a percentage.
func (t *TenantStatus) EachLimit(f func(limitType string, limit int64, pct float64)) {
	for _, c := range t.limits {
		if used, ok := t.Usage.Value(c.Type); ok && c.Unavailable == nil {
			f(c.Type, c.Limit, percentage(used, c.Limit))
		}
	}
}

// EachKnownLimit calls f for readable limits.
func (t *TenantStatus) EachKnownLimit(f func(limitType string, limit int64)) {
	for _, c := range t.limits {
		if c.Limit > 0 {
			f(c.Type, c.Limit)
		}
	}
}

func percentage(used, limit int64) float64 { return 100 * float64(used) / float64(limit) }

// PlanCount counts a plan's tenants.
type PlanCount struct {
	PlanID, PlanName string
	Tenants          int
}

// ThresholdCount counts tenants over a threshold.
type ThresholdCount struct {
	LimitType string
	Threshold float64
	Tenants   int
}

// Report is one joined read.
type Report struct {
	At     time.Time
	Period period.Period

	Usage         *usage.Snapshot // released once joined
	UsageErr      error
	UsageDuration time.Duration

	Plans PlansState

	Tenants       []TenantStatus // sorted by id
	PerPlan       []PlanCount    // nil when usage or limits are unknown
	OverThreshold []ThresholdCount
}

// UsageUp reports whether usage was read.
func (r *Report) UsageUp() bool { return r.UsageErr == nil && r.Usage != nil }

// join reuses prev's order when it can.
func (r *Report) join(defaults plans.Limits, thresholds []float64, prev *Report) {
	if !r.UsageUp() {
		return
	}
	cat := r.Plans.Catalog
	ix := newLimitIndex(r.Plans, defaults)
	r.Tenants = r.sameTenants(prev, ix)
	if r.Tenants == nil {
		known := knownTenants(r.Usage.Tenants, cat)
		parts := splitEven(len(known), runtime.GOMAXPROCS(0))
		eachPart(parts, func(lo, hi int) { slices.SortFunc(known[lo:hi], compareKnown) })
		known = mergeSorted(known, parts)
		r.Tenants = make([]TenantStatus, len(known))
		eachPart(parts, func(lo, hi int) {
			missing := map[string]*Terms{}
			for i := lo; i < hi; i++ {
				r.Tenants[i] = TenantStatus{ID: known[i].id, Usage: known[i].counters, Terms: ix.termsOf(known[i].planID, missing)}
			}
		})
	}
	if !r.Plans.LimitsKnown() {
		return
	}
	r.PerPlan = perPlan(r.Tenants, cat)
	r.OverThreshold = overThreshold(r.Tenants, cat, defaults, thresholds)
}

func (r *Report) sameTenants(prev *Report, ix limitIndex) []TenantStatus {
	if prev == nil || len(prev.Tenants) == 0 {
		return nil
	}
	used, planOf := r.Usage.Tenants, catalogTenants(r.Plans.Catalog)
	if n := len(prev.Tenants); n < len(used) || n < len(planOf) {
		return nil
	}
	tenants := make([]TenantStatus, len(prev.Tenants))
	var inUse, inCat atomic.Int64
	var missing atomic.Bool
	eachPart(splitEven(len(tenants), runtime.GOMAXPROCS(0)), func(lo, hi int) {
		unknownPlans := map[string]*Terms{}
		var nUse, nCat int64
		for i := lo; i < hi; i++ {
			id := prev.Tenants[i].ID
			counters, okUse := used[id]
			planID, okCat := planOf[id]
			if !okUse && !okCat {
				missing.Store(true)
				return
			}
			if okUse {
				nUse++
			}
			if okCat {
				nCat++
			}
			tenants[i] = TenantStatus{ID: id, Usage: counters, Terms: ix.termsOf(planID, unknownPlans)}
		}
		inUse.Add(nUse)
		inCat.Add(nCat)
	})
	if missing.Load() || inUse.Load() != int64(len(used)) || inCat.Load() != int64(len(planOf)) {
		return nil
	}
	return tenants
}

func catalogTenants(cat *plans.Catalog) map[string]string {
	if cat == nil {
		return nil
	}
	return cat.Tenants
}

// Same compares counters by identity.
func (t *TenantStatus) Same(o *TenantStatus) bool {
	return t.ID == o.ID && t.Usage == o.Usage && t.sameTerms(o.Terms)
}

func (t *Terms) sameTerms(o *Terms) bool {
	if t == o || t == nil || o == nil {
		return t == o
	}
	return t.LimitsKnown == o.LimitsKnown && t.PlanID == o.PlanID && t.PlanName == o.PlanName &&
		t.UsingDefaults == o.UsingDefaults && t.PlanUnknown == o.PlanUnknown &&
		maps.Equal(t.Limits, o.Limits) && maps.Equal(t.UnreadableLimits, o.UnreadableLimits) &&
		slices.EqualFunc(t.limits, o.limits, func(a, b LimitCheck) bool {
			return a.Type == b.Type && a.Limit == b.Limit &&
				(a.Unavailable == b.Unavailable || a.Unavailable != nil && b.Unavailable != nil && *a.Unavailable == *b.Unavailable)
		})
}

type knownTenant struct {
	id       string
	counters usage.Counters
	planID   string
}

func knownTenants(used map[string]usage.Counters, cat *plans.Catalog) []knownTenant {
	planOf := catalogTenants(cat)
	known := make([]knownTenant, 0, max(len(used), len(planOf)))
	withUsage := 0
	for id, planID := range planOf {
		counters, ok := used[id]
		if ok {
			withUsage++
		}
		known = append(known, knownTenant{id, counters, planID})
	}
	if withUsage == len(used) {
		return known
	}
	for id, counters := range used {
		if _, ok := planOf[id]; !ok {
			known = append(known, knownTenant{id: id, counters: counters})
		}
	}
	return known
}

func compareKnown(a, b knownTenant) int { return strings.Compare(a.id, b.id) }

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

func mergeSorted(s []knownTenant, bounds []int) []knownTenant {
	for len(bounds) > 2 {
		out := make([]knownTenant, 0, len(s))
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

type limitIndex struct {
	plans  map[string]*Terms
	noPlan *Terms
}

func newLimitIndex(ps PlansState, defaults plans.Limits) limitIndex {
	if !ps.LimitsKnown() {
		return limitIndex{noPlan: &Terms{}}
	}
	ix := limitIndex{
		plans:  map[string]*Terms{},
		noPlan: NewTerms(Terms{LimitsKnown: true, UsingDefaults: true, PlanID: NoPlanID, Limits: defaults}, ""),
	}
	if cat := ps.Catalog; cat != nil {
		for id, p := range cat.Plans {
			ix.plans[id] = NewTerms(Terms{LimitsKnown: true, PlanID: p.ID, PlanName: p.Name, Limits: p.Limits,
				UnreadableLimits: p.Unreadable}, ps.Source)
		}
	}
	return ix
}

// missing caches plans without a row.
func (ix limitIndex) termsOf(planID string, missing map[string]*Terms) *Terms {
	if planID == "" {
		return ix.noPlan
	}
	if t, ok := ix.plans[planID]; ok {
		return t
	}
	t, ok := missing[planID]
	if !ok {
		t = &Terms{LimitsKnown: true, PlanUnknown: true, PlanID: planID, Limits: plans.Limits{}}
		missing[planID] = t
	}
	return t
}

func sortedLimits(l plans.Limits, unreadable map[string]string, source string) []LimitCheck {
	out := make([]LimitCheck, 0, len(l)+len(unreadable))
	for lt, v := range l {
		if _, bad := unreadable[lt]; v > 0 && !bad {
			out = append(out, LimitCheck{Type: lt, Limit: v})
		}
	}
	for lt, reason := range unreadable {
		out = append(out, LimitCheck{Type: lt, Unavailable: &Unavailable{Source: source, Reason: reason}})
	}
	slices.SortFunc(out, func(a, b LimitCheck) int { return strings.Compare(a.Type, b.Type) })
	return out
}

func perPlan(tenants []TenantStatus, cat *plans.Catalog) []PlanCount {
	counts := map[string]int{}
	for _, t := range tenants {
		counts[t.PlanID]++
	}
	var out []PlanCount
	if cat != nil {
		for _, id := range slices.Sorted(maps.Keys(cat.Plans)) {
			out = append(out, PlanCount{PlanID: id, PlanName: cat.Plans[id].Name, Tenants: counts[id]})
			delete(counts, id)
		}
	}
	// Plans without a row count too.
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		if id != NoPlanID && id != "" {
			out = append(out, PlanCount{PlanID: id, Tenants: counts[id]})
		}
	}
	return append(out, PlanCount{PlanID: NoPlanID, Tenants: counts[NoPlanID]})
}

// overThreshold counts zeros too, for alerts.
func overThreshold(tenants []TenantStatus, cat *plans.Catalog, defaults plans.Limits, thresholds []float64) []ThresholdCount {
	types := slices.Collect(maps.Keys(defaults))
	if cat != nil {
		for _, p := range cat.Plans {
			types = slices.AppendSeq(slices.AppendSeq(types, maps.Keys(p.Limits)), maps.Keys(p.Unreadable))
		}
	}
	slices.Sort(types)
	types = slices.Compact(types)
	// EachLimit gives no type outside types.
	zeros := func() map[string][]int {
		counts := make(map[string][]int, len(types))
		for _, lt := range types {
			counts[lt] = make([]int, len(thresholds))
		}
		return counts
	}
	counts := zeros()
	var mu sync.Mutex
	eachPart(splitEven(len(tenants), runtime.GOMAXPROCS(0)), func(lo, hi int) {
		part := zeros()
		for i := lo; i < hi; i++ {
			tenants[i].EachLimit(func(lt string, _ int64, pct float64) {
				for k, th := range thresholds {
					if pct >= th {
						part[lt][k]++
					}
				}
			})
		}
		mu.Lock()
		defer mu.Unlock()
		for lt, c := range part {
			for k, n := range c {
				counts[lt][k] += n
			}
		}
	})
	var out []ThresholdCount
	for _, lt := range types {
		for k, th := range thresholds {
			out = append(out, ThresholdCount{LimitType: lt, Threshold: th, Tenants: counts[lt][k]})
		}
	}
	return out
}

// TenantReport is one tenant's join.
type TenantReport struct {
	At     time.Time
	Period period.Period
	Status TenantStatus
	Plans  PlansState
}
