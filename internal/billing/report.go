package billing

import (
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// NoPlanID is the plan id of tenants without a plan.
const NoPlanID = "none"

// PlansState describes the plans data of a join.
type PlansState struct {
	Configured bool   // a plans source is set
	Source     string // "postgres", "file"
	Up         bool   // this read succeeded
	Err        error
	Duration   time.Duration
	Catalog    *plans.Catalog // the last good one, or nil
	LoadedAt   time.Time
}

// Stale reports whether the catalog is older than this read.
func (p PlansState) Stale() bool { return p.Configured && !p.Up && p.Catalog != nil }

// LimitsKnown reports whether limits can be stated: they cannot while the
// plans source was never read.
func (p PlansState) LimitsKnown() bool { return !p.Configured || p.Catalog != nil }

// TenantStatus is one tenant joined with its limits, kept small: one is
// held per tenant.
type TenantStatus struct {
	ID     string
	Usage  usage.Counters // nil without a usage key this period
	*Terms                // shared: never modified
}

// Terms is what a tenant's plan gives it, when LimitsKnown.
type Terms struct {
	LimitsKnown      bool
	UsingDefaults    bool
	PlanUnknown      bool   // the plan has no row: no limit, not the defaults
	PlanID           string // NoPlanID when no active plan
	PlanName         string
	Limits           plans.Limits      // the plan's, or the defaults
	UnreadableLimits map[string]string // plans.Plan.Unreadable

	limits *[]LimitCheck // sorted by type; nil when none is stated
}

// NewTerms returns t with its limits in force sorted, which a TenantStatus
// needs; source is the plans source of UnreadableLimits.
func NewTerms(t Terms, source string) *Terms {
	if t.LimitsKnown {
		l := sortedLimits(t.Limits, t.UnreadableLimits, source)
		t.limits = &l
	}
	return &t
}

// messagesType is singled out by the ranking and the alerts.
const messagesType = "messages"

// LimitCheck is one limit in force.
type LimitCheck struct {
	Type        string
	Limit       int64        // 0 when unavailable
	Unavailable *Unavailable // nil when read
}

// Unavailable says why the figures of a limit type are not given, rather
// than a wrong 0 %.
type Unavailable struct {
	Source string // UsageSource, or the plans source
	Reason string // as counted by billing_exporter_invalid_data_items
}

// UsageSource is the Unavailable.Source of a usage field.
const UsageSource = "redis"

// Is reports whether the figure is unavailable.
func (u Unavailable) Is() bool { return u.Reason != "" }

// noPercentage is never a real, non-negative, percentage.
const noPercentage = -1

func percentageOf(c LimitCheck, counters usage.Counters) float64 {
	if c.Unavailable != nil {
		return noPercentage
	}
	used, ok := counters.Value(c.Type)
	if !ok {
		return noPercentage
	}
	return percentage(used, c.Limit)
}

func (t *Terms) limitList() []LimitCheck {
	if t.limits == nil {
		return nil
	}
	return *t.limits
}

// Used returns the usage of a metric type, as usage.Hash.Value.
func (t *TenantStatus) Used(metricType string) (int64, bool) {
	return t.Usage.Value(metricType)
}

// Percentage returns 100 × used / limit, false when there is none.
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

// Unavailable says why the figures of a metric type are not given.
func (t *TenantStatus) Unavailable(metricType string) Unavailable {
	for _, c := range t.limitList() {
		if c.Type == metricType && c.Unavailable != nil {
			return *c.Unavailable
		}
	}
	if reason, ok := t.Usage.Unreadable(metricType); ok {
		return Unavailable{Source: UsageSource, Reason: string(reason)}
	}
	return Unavailable{}
}

// EachLimit calls f for every limit in force with a known percentage.
func (t *TenantStatus) EachLimit(f func(limitType string, limit int64, pct float64)) {
	for _, c := range t.limitList() {
		if pct := percentageOf(c, t.Usage); pct != noPercentage {
			f(c.Type, c.Limit, pct)
		}
	}
}

// EachKnownLimit calls f for every limit in force that could be read.
func (t *TenantStatus) EachKnownLimit(f func(limitType string, limit int64)) {
	for _, c := range t.limitList() {
		if c.Limit > 0 {
			f(c.Type, c.Limit)
		}
	}
}

func percentage(used, limit int64) float64 { return 100 * float64(used) / float64(limit) }

// PlanCount is the number of tenants on a plan.
type PlanCount struct {
	PlanID, PlanName string
	Tenants          int
}

// ThresholdCount is the number of tenants at or above a threshold.
type ThresholdCount struct {
	LimitType string
	Threshold float64
	Tenants   int
}

// Report is one joined read.
type Report struct {
	At     time.Time
	Period period.Period

	Usage         *usage.Snapshot // nil when the read failed; released once joined
	UsageErr      error
	UsageDuration time.Duration

	Plans PlansState

	// Tenants holds those with usage or a plan, by id; none without usage.
	Tenants []TenantStatus
	// PerPlan and OverThreshold are nil when usage or limits are unknown.
	PerPlan       []PlanCount
	OverThreshold []ThresholdCount
}

// UsageUp reports whether the usage read succeeded.
func (r *Report) UsageUp() bool { return r.UsageErr == nil && r.Usage != nil }

// join fills Tenants, PerPlan and OverThreshold; prev, the last join with
// the same defaults, may save the sort.
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
		eachPart(parts, func(lo, hi int) {
			slices.SortFunc(known[lo:hi], compareKnown)
		})
		known = mergeSorted(known, parts)
		r.Tenants = make([]TenantStatus, len(known))
		eachPart(parts, func(lo, hi int) {
			missing := map[string]*Terms{}
			for i := lo; i < hi; i++ {
				k := &known[i]
				r.Tenants[i] = TenantStatus{ID: k.id, Usage: k.counters, Terms: ix.termsOf(k.planID, missing)}
			}
		})
	}
	if !r.Plans.LimitsKnown() {
		return
	}
	r.PerPlan = perPlan(r.Tenants, cat)
	r.OverThreshold = overThreshold(r.Tenants, cat, defaults, thresholds)
}

// sameTenants joins the tenants in prev's order if they are prev's, else nil.
func (r *Report) sameTenants(prev *Report, ix limitIndex) []TenantStatus {
	if prev == nil || len(prev.Tenants) == 0 {
		return nil
	}
	used, cat := r.Usage.Tenants, r.Plans.Catalog
	catTenants := 0
	if cat != nil {
		catTenants = len(cat.Tenants)
	}
	// prev's tenants are all known, and as many: the same.
	if n := len(prev.Tenants); n < len(used) || n < catTenants {
		return nil
	}
	tenants := make([]TenantStatus, len(prev.Tenants))
	parts := splitEven(len(tenants), runtime.GOMAXPROCS(0))
	inUse, inCat := make([]int, len(parts)), make([]int, len(parts))
	missing := make([]bool, len(parts))
	eachPart(parts, func(lo, hi int) {
		p := slices.Index(parts, lo)
		unknownPlans := map[string]*Terms{}
		for i := lo; i < hi; i++ {
			id := prev.Tenants[i].ID
			counters, okUse := used[id]
			var planID string
			var okCat bool
			if cat != nil {
				planID, okCat = cat.Tenants[id]
			}
			if !okUse && !okCat {
				missing[p] = true
				return
			}
			if okUse {
				inUse[p]++
			}
			if okCat {
				inCat[p]++
			}
			tenants[i] = TenantStatus{ID: id, Usage: counters, Terms: ix.termsOf(planID, unknownPlans)}
		}
	})
	if slices.Contains(missing, true) || sum(inUse) != len(used) || sum(inCat) != catTenants {
		return nil
	}
	return tenants
}

func sum(ns []int) int {
	t := 0
	for _, n := range ns {
		t += n
	}
	return t
}

// Same reports whether t and o state the same; counters compare by
// identity, as a reader shares the unchanged ones.
func (t *TenantStatus) Same(o *TenantStatus) bool {
	return t.ID == o.ID && t.Usage == o.Usage && t.sameTerms(o.Terms)
}

func (t *Terms) sameTerms(o *Terms) bool {
	switch {
	case t == o:
		return true
	case t == nil || o == nil:
		return false
	}
	return t.LimitsKnown == o.LimitsKnown && t.PlanID == o.PlanID && t.PlanName == o.PlanName &&
		t.UsingDefaults == o.UsingDefaults && t.PlanUnknown == o.PlanUnknown &&
		(sameMap(t.Limits, o.Limits) || maps.Equal(t.Limits, o.Limits)) &&
		(sameMap(t.UnreadableLimits, o.UnreadableLimits) || maps.Equal(t.UnreadableLimits, o.UnreadableLimits)) &&
		slices.EqualFunc(t.limitList(), o.limitList(), func(a, b LimitCheck) bool {
			return a.Type == b.Type && a.Limit == b.Limit &&
				(a.Unavailable == b.Unavailable || a.Unavailable != nil && b.Unavailable != nil && *a.Unavailable == *b.Unavailable)
		})
}

// sameMap reports whether a and b are the same map.
func sameMap[M ~map[K]V, K comparable, V any](a, b M) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

type knownTenant struct {
	id       string
	counters usage.Counters
	planID   string
}

// knownTenants lists the tenants with usage or in the catalog.
func knownTenants(used map[string]usage.Counters, cat *plans.Catalog) []knownTenant {
	if cat == nil {
		known := make([]knownTenant, 0, len(used))
		for id, counters := range used {
			known = append(known, knownTenant{id: id, counters: counters})
		}
		return known
	}
	known := make([]knownTenant, 0, max(len(used), len(cat.Tenants)))
	withUsage := 0
	for id, planID := range cat.Tenants {
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
		if _, ok := cat.Tenants[id]; !ok {
			known = append(known, knownTenant{id: id, counters: counters})
		}
	}
	return known
}

func compareKnown(a, b knownTenant) int { return strings.Compare(a.id, b.id) }

// splitEven cuts n items into at most k even parts, [b[i], b[i+1]).
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
			if i+2 >= len(bounds) { // an odd part out
				out = append(out, s[bounds[i]:bounds[i+1]]...)
				next = append(next, len(out))
				break
			}
			a, b := s[bounds[i]:bounds[i+1]], s[bounds[i+1]:bounds[i+2]]
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

// limitIndex holds the Terms of each plan, made once per join.
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

// termsOf returns the Terms of planID, "" for none; missing holds those
// of plans without a row.
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
	// Plans without a row count too, so that the counts add up.
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		if id != NoPlanID && id != "" {
			out = append(out, PlanCount{PlanID: id, Tenants: counts[id]})
		}
	}
	return append(out, PlanCount{PlanID: NoPlanID, Tenants: counts[NoPlanID]})
}

// overThreshold counts the tenants over each threshold of each limit type,
// zeros too, so that alerts see 0 rather than nothing.
func overThreshold(tenants []TenantStatus, cat *plans.Catalog, defaults plans.Limits, thresholds []float64) []ThresholdCount {
	types := map[string]struct{}{}
	for lt := range defaults {
		types[lt] = struct{}{}
	}
	if cat != nil {
		for _, p := range cat.Plans {
			for lt := range p.Limits {
				types[lt] = struct{}{}
			}
			for lt := range p.Unreadable {
				types[lt] = struct{}{}
			}
		}
	}
	newCounts := func() map[string][]int {
		counts := make(map[string][]int, len(types))
		for lt := range types {
			counts[lt] = make([]int, len(thresholds))
		}
		return counts
	}
	parts := splitEven(len(tenants), runtime.GOMAXPROCS(0))
	partCounts := make([]map[string][]int, len(parts)-1)
	eachPart(parts, func(lo, hi int) {
		counts := newCounts()
		for i := lo; i < hi; i++ {
			tenants[i].EachLimit(func(lt string, _ int64, pct float64) {
				c := counts[lt]
				for k, th := range thresholds {
					if pct >= th {
						c[k]++
					}
				}
			})
		}
		partCounts[slices.Index(parts, lo)] = counts
	})
	counts := newCounts()
	for _, pc := range partCounts {
		for lt, c := range pc {
			for k, n := range c {
				counts[lt][k] += n
			}
		}
	}
	var out []ThresholdCount
	for _, lt := range slices.Sorted(maps.Keys(types)) {
		for k, th := range thresholds {
			out = append(out, ThresholdCount{LimitType: lt, Threshold: th, Tenants: counts[lt][k]})
		}
	}
	return out
}

// TenantReport is one tenant's joined state.
type TenantReport struct {
	At     time.Time
	Period period.Period
	Status TenantStatus
	Plans  PlansState
}
