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

// NoPlanID is the plan id under which tenants without an active plan are
// counted.
const NoPlanID = "none"

// PlansState describes the plans data a report was joined with.
type PlansState struct {
	Configured bool   // a plans source is set
	Source     string // "postgres", "file"
	Up         bool   // this read of the source succeeded
	Err        error  // why it did not
	Duration   time.Duration
	// Catalog is the data in use: this read's, or the last good one when
	// the source is down (stale), or nil when it was never read.
	Catalog  *plans.Catalog
	LoadedAt time.Time
}

// Stale reports whether the catalog in use is older than this read.
func (p PlansState) Stale() bool { return p.Configured && !p.Up && p.Catalog != nil }

// LimitsKnown reports whether limits can be stated at all: with no plans
// source every tenant is on defaults; with one that was never read nobody
// can say.
func (p PlansState) LimitsKnown() bool { return !p.Configured || p.Catalog != nil }

// TenantStatus is one tenant joined with its limits.
//
// A status is held per tenant, a million of them at the largest sizes
// served, and made anew by every join while the last join's are still in
// use: what its plan gives it (Terms) is shared by every tenant on the
// plan in one join, and its figures (percentages) are computed from its
// counters when asked for, not kept, so that a status is 32 bytes
// (BENCHMARKS.md, "1M tenants: what a read held twice").
type TenantStatus struct {
	ID string
	// Usage holds the tenant's hash fields; nil when the tenant has no
	// usage key this period.
	Usage usage.Counters
	// Terms is never nil in a joined status. Never modified once joined:
	// other tenants' statuses share it.
	*Terms
}

// Terms is what a tenant's plan gives it: the plan, and the limits in
// force. The following are meaningful only when LimitsKnown.
type Terms struct {
	LimitsKnown   bool
	UsingDefaults bool
	// PlanUnknown: the tenant is on PlanID, but that plan's row is
	// missing from the plans data, so no limit is stated (Limits is empty)
	// rather than the defaults, which would be wrong.
	PlanUnknown bool
	PlanID      string // NoPlanID when no active plan
	PlanName    string
	Limits      plans.Limits // in force: the plan's, or the defaults
	// UnreadableLimits holds the plan's limits that the plans source could
	// not read, by limit type, with the reason (plans.Plan.Unreadable).
	UnreadableLimits map[string]string

	// limits are the limits in force, sorted by type (read-only); nil when
	// limits are unknown or the plan's row is missing.
	limits *[]LimitCheck
}

// messagesType is the metric type the ranking and the alerts single out.
const messagesType = "messages"

// ComputeChecks fills the limits in force from Limits and
// UnreadableLimits. The join does this itself (once per plan); it is for a
// TenantStatus built by hand (tests, other views), with Terms of its own.
func (t *TenantStatus) ComputeChecks() {
	if t.Terms == nil {
		t.Terms = &Terms{}
	}
	t.limits = nil
	if !t.LimitsKnown {
		return
	}
	limits := sortedLimits(t.Limits, t.UnreadableLimits, "")
	t.limits = &limits
}

// LimitCheck is one limit in force: its type and value, or why the plans
// source could not read it.
type LimitCheck struct {
	Type  string
	Limit int64 // 0 when the limit itself is unavailable
	// Unavailable says why the limit could not be read; nil when it could.
	Unavailable *Unavailable
}

// Unavailable says why a figure of one limit type of one tenant is not
// given: the usage field or the limit it would be derived from could not
// be read. A wrong 0 % would hide the tenant from the near-limit list and
// the alerts, so no percentage, threshold count or projection is derived
// for that limit type; the tenant's other limit types are unaffected.
type Unavailable struct {
	// Source is what could not be read: "redis" (the usage field), or the
	// plans source ("postgres", "file") for the limit.
	Source string
	// Reason is the invalid-data reason it was skipped under, as counted by
	// billing_exporter_invalid_data_items (invalid_value, wrong_type,
	// negative_limit, non_integer_limit, ...).
	Reason string
}

// UsageSource is the Unavailable.Source of a usage field.
const UsageSource = "redis"

// Is reports whether there is a reason, that is whether the figure is
// unavailable.
func (u Unavailable) Is() bool { return u.Reason != "" }

// noPercentage stands for a percentage that cannot be computed. A real
// one is never negative: usage is never negative, and a limit in force is
// positive.
const noPercentage = -1

// percentageOf computes the tenant's percentage of one limit, noPercentage
// when the limit or the usage field could not be read.
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

// limitList returns the limits in force, sorted by type.
func (t *Terms) limitList() []LimitCheck {
	if t.limits == nil {
		return nil
	}
	return *t.limits
}

// Used returns the usage of a metric type: 0 when the field is absent, and
// false when it was present but could not be read.
func (t *TenantStatus) Used(metricType string) (int64, bool) {
	return t.Usage.Value(metricType)
}

// Percentage returns 100 × used / limit, and false when the metric type is
// unlimited, limits are unknown, or the usage or the limit could not be
// read (Unavailable says which).
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

// Unavailable says why the figures of a metric type cannot be given for
// this tenant: its limit could not be read (when limits are known), or its
// usage field could not. The zero value when nothing is missing.
func (t *TenantStatus) Unavailable(metricType string) Unavailable {
	for _, c := range t.limitList() {
		if c.Type == metricType && c.Unavailable != nil {
			return *c.Unavailable
		}
	}
	// The usage field, whether or not the type has a limit.
	if reason, ok := t.Usage.Unreadable(metricType); ok {
		return Unavailable{Source: UsageSource, Reason: string(reason)}
	}
	return Unavailable{}
}

// EachLimit calls f for every limit in force that the tenant's percentage
// of is known, in limit type order; nothing when limits are unknown. It is
// Percentage for all limit types at once, without a map lookup (this runs
// for every tenant on every scrape: the thresholds, the ranking). Limit
// types whose usage or limit could not be read are left out: thresholds,
// rankings and percentages all go through here, and none may count them.
//
// The percentages are computed here, not kept per tenant: a walk of a few
// limits and of the tenant's few fields costs less than a million tenants'
// percentages held twice (the last join's and the new one's) during every
// read (BENCHMARKS.md, "1M tenants: what a read held twice").
func (t *TenantStatus) EachLimit(f func(limitType string, limit int64, pct float64)) {
	for _, c := range t.limitList() {
		if pct := percentageOf(c, t.Usage); pct != noPercentage {
			f(c.Type, c.Limit, pct)
		}
	}
}

// EachKnownLimit calls f for every limit in force that could be read, in
// limit type order, whether or not the tenant's usage of it could: a limit
// is not derived from the usage.
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

// ThresholdCount is the number of tenants at or above a percentage of one
// limit type.
type ThresholdCount struct {
	LimitType string
	Threshold float64
	Tenants   int
}

// Report is one joined read.
type Report struct {
	At     time.Time
	Period period.Period

	// Usage is nil when the read failed. Its Tenants and Types are
	// released once joined (usage.Snapshot.Release): Tenants holds what
	// they held.
	Usage         *usage.Snapshot
	UsageErr      error
	UsageDuration time.Duration

	Plans PlansState

	// Tenants is every known tenant (usage key this period or a row in the
	// plans data), sorted by id. Empty when usage could not be read: no
	// tenant is reported from half the picture.
	Tenants []TenantStatus
	// PerPlan counts tenants by plan, including plans with none and the
	// NoPlanID bucket; nil when usage or limits are unavailable.
	PerPlan []PlanCount
	// OverThreshold counts tenants at or above each threshold of each limit
	// type in force; nil when usage or limits are unavailable.
	OverThreshold []ThresholdCount
}

// UsageUp reports whether the usage read succeeded.
func (r *Report) UsageUp() bool { return r.UsageErr == nil && r.Usage != nil }

// join fills Tenants, PerPlan and OverThreshold from Usage and Plans.
//
// It runs after both reads, before a scrape can write anything, on every
// scrape: at 100k tenants it is the largest step between the reads and the
// response, so the sort and the per-tenant work are split over the cores.
//
// prev, when not nil, is the last join made with the same defaults: when
// it holds the same tenants, they are taken in its order instead of being
// sorted again.
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

// sameTenants returns the statuses of the tenants to join in the order of
// prev's, when prev joined exactly the same tenants (nil otherwise). It
// costs a lookup in the usage and the catalog per tenant, which the join
// makes anyway, instead of a sort; the statuses are made as the tenants
// are looked up, with no list of them in between (at 1M tenants such a
// list was 40 MB more per scrape).
func (r *Report) sameTenants(prev *Report, ix limitIndex) []TenantStatus {
	if prev == nil || len(prev.Tenants) == 0 {
		return nil
	}
	used, cat := r.Usage.Tenants, r.Plans.Catalog
	catTenants := 0
	if cat != nil {
		catTenants = len(cat.Tenants)
	}
	// Every tenant of prev is known now, and there are as many with usage
	// and as many in the catalog as now: the same tenants.
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

// Same reports whether t and o state the same figures for the same tenant
// (plan, limits, usage, checks), so that a view may show what it rendered
// for o as t's. The counters are compared by identity, not content: a
// reader that keeps the usage state between reads shares the counters of
// the hashes that did not change, and then this costs no walk of their
// fields; counters read anew are never the same, whatever they hold.
func (t *TenantStatus) Same(o *TenantStatus) bool {
	return t.ID == o.ID && t.Usage == o.Usage && t.sameTerms(o.Terms)
}

// sameTerms reports whether t and o state the same plan and limits; at
// once when they are the same Terms, as the statuses of one plan in one
// join are.
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
		(t.limits == o.limits || slices.EqualFunc(t.limitList(), o.limitList(), func(a, b LimitCheck) bool {
			return a.Type == b.Type && a.Limit == b.Limit &&
				(a.Unavailable == b.Unavailable || a.Unavailable != nil && b.Unavailable != nil && *a.Unavailable == *b.Unavailable)
		}))
}

// sameMap reports whether a and b are the same map (or both nil).
func sameMap[M ~map[K]V, K comparable, V any](a, b M) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// knownTenant is a tenant as gathered for the join: its id, its usage (nil
// when only the plans know it) and its plan id ("" when the plans do not
// know it or give it no plan).
type knownTenant struct {
	id       string
	counters usage.Counters
	planID   string
}

// knownTenants lists every known tenant: those with usage, plus those only
// the plans know, with one map lookup per tenant. The catalog's tenants are
// looked up in the usage; the usage's are looked up in the catalog only when
// some have no row there (with the default query every tenant has one).
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

// splitEven cuts n items into at most k contiguous parts of nearly equal
// size and returns their boundaries: part i is [b[i], b[i+1]). Below a few
// thousand items one part is cheaper than starting goroutines.
func splitEven(n, k int) []int {
	const minPart = 4096
	k = max(1, min(k, n/minPart))
	bounds := make([]int, k+1)
	for i := range bounds {
		bounds[i] = i * n / k
	}
	return bounds
}

// eachPart calls f for every part of bounds, in parallel.
func eachPart(bounds []int, f func(lo, hi int)) {
	var wg sync.WaitGroup
	for i := 0; i+1 < len(bounds); i++ {
		wg.Go(func() { f(bounds[i], bounds[i+1]) })
	}
	wg.Wait()
}

// mergeSorted merges the sorted parts of s (boundaries as from splitEven)
// into one sorted slice. Ids are unique, so the order is total.
func mergeSorted(s []knownTenant, bounds []int) []knownTenant {
	for len(bounds) > 2 {
		// Merge neighbouring pairs of parts until one part is left.
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

// limitIndex holds each plan's terms, and those of a tenant without a
// plan, with their limits as slices sorted by type: built once per join for
// the few plans, shared by every tenant.
type limitIndex struct {
	plans map[string]*Terms
	// noPlan is the terms of a tenant the plans data gives no plan: the
	// defaults, or nothing stated when limits are unknown.
	noPlan *Terms
}

func newLimitIndex(ps PlansState, defaults plans.Limits) limitIndex {
	if !ps.LimitsKnown() {
		return limitIndex{noPlan: &Terms{}}
	}
	d := sortedLimits(defaults, nil, "")
	ix := limitIndex{
		plans:  map[string]*Terms{},
		noPlan: &Terms{LimitsKnown: true, UsingDefaults: true, PlanID: NoPlanID, Limits: defaults, limits: &d},
	}
	if cat := ps.Catalog; cat != nil {
		for id, p := range cat.Plans {
			l := sortedLimits(p.Limits, p.Unreadable, ps.Source)
			ix.plans[id] = &Terms{LimitsKnown: true, PlanID: p.ID, PlanName: p.Name, Limits: p.Limits,
				UnreadableLimits: p.Unreadable, limits: &l}
		}
	}
	return ix
}

// termsOf returns the terms of a tenant the catalog the index was built
// from puts on planID ("" for none, and always "" without a catalog). A
// plan whose row is missing gets terms of its own, kept in missing (one map
// per goroutine: the join runs in parallel).
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

// sortedLimits lists the positive limits of l and the unreadable ones (from
// the plans source named source), sorted by type.
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
	// Plans whose row is missing still count their tenants
	// (without a name), so that the counts add up to every tenant.
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		if id != NoPlanID && id != "" {
			out = append(out, PlanCount{PlanID: id, Tenants: counts[id]})
		}
	}
	return append(out, PlanCount{PlanID: NoPlanID, Tenants: counts[NoPlanID]})
}

// overThreshold counts, for every limit type that some plan or the defaults
// limit, the tenants at or above each threshold. Every combination is
// present, zeros included, so that alerts and dashboards see 0 rather than
// nothing.
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
	// Counted per part, on every core: each percentage is computed from
	// the tenant's counters.
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

// TenantReport is one tenant's joined state, for the API.
type TenantReport struct {
	At     time.Time
	Period period.Period
	Status TenantStatus
	Plans  PlansState
}
