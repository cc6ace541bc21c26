package billing

import (
	"maps"
	"slices"
	"time"

	"github.com/billing-exporter/billing_exporter/period"
	"github.com/billing-exporter/billing_exporter/plans"
	"github.com/billing-exporter/billing_exporter/usage"
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
type TenantStatus struct {
	ID string
	// Usage holds the tenant's hash fields; nil when the tenant has no
	// usage key this period.
	Usage usage.Counters
	// The following are meaningful only when LimitsKnown.
	LimitsKnown   bool
	PlanID        string // NoPlanID when no active plan
	PlanName      string
	UsingDefaults bool
	Limits        plans.Limits // in force: the plan's, or the defaults
}

// Used returns the usage of a metric type (0 when the field is absent).
func (t *TenantStatus) Used(metricType string) int64 { return t.Usage[metricType] }

// Percentage returns 100 × used / limit, and false when the metric type is
// unlimited or limits are unknown.
func (t *TenantStatus) Percentage(limitType string) (float64, bool) {
	if !t.LimitsKnown {
		return 0, false
	}
	limit, ok := t.Limits[limitType]
	if !ok || limit <= 0 {
		return 0, false
	}
	return percentage(t.Usage[limitType], limit), true
}

// EachLimit calls f for every limit in force with the tenant's percentage
// of it; nothing when limits are unknown. It is Percentage for all limit
// types at once, with one map lookup per type (this runs for every tenant
// on every scrape).
func (t *TenantStatus) EachLimit(f func(limitType string, limit int64, pct float64)) {
	if !t.LimitsKnown {
		return
	}
	for lt, limit := range t.Limits {
		if limit > 0 {
			f(lt, limit, percentage(t.Usage[lt], limit))
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

	Usage         *usage.Snapshot // nil when the read failed
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
func (r *Report) join(defaults plans.Limits, thresholds []float64) {
	if !r.UsageUp() {
		return
	}
	cat := r.Plans.Catalog
	size := len(r.Usage.Tenants)
	if cat != nil {
		size = max(size, len(cat.Tenants))
	}
	ids := make(map[string]struct{}, size)
	for id := range r.Usage.Tenants {
		ids[id] = struct{}{}
	}
	if cat != nil {
		for id := range cat.Tenants {
			ids[id] = struct{}{}
		}
	}
	r.Tenants = make([]TenantStatus, 0, len(ids))
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		planID := ""
		if cat != nil {
			planID = cat.Tenants[id]
		}
		r.Tenants = append(r.Tenants, tenantStatus(id, r.Usage.Tenants[id], planID, r.Plans, defaults))
	}
	if !r.Plans.LimitsKnown() {
		return
	}
	r.PerPlan = perPlan(r.Tenants, cat)
	r.OverThreshold = overThreshold(r.Tenants, cat, defaults, thresholds)
}

func tenantStatus(id string, counters usage.Counters, planID string, ps PlansState, defaults plans.Limits) TenantStatus {
	st := TenantStatus{ID: id, Usage: counters, LimitsKnown: ps.LimitsKnown()}
	if !st.LimitsKnown {
		return st
	}
	if ps.Catalog != nil && planID != "" {
		if plan, ok := ps.Catalog.Plans[planID]; ok {
			st.PlanID, st.PlanName, st.Limits = plan.ID, plan.Name, plan.Limits
			return st
		}
	}
	st.PlanID, st.UsingDefaults, st.Limits = NoPlanID, true, defaults
	return st
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
		}
	}
	counts := make(map[string][]int, len(types))
	for lt := range types {
		counts[lt] = make([]int, len(thresholds))
	}
	for i := range tenants {
		tenants[i].EachLimit(func(lt string, _ int64, pct float64) {
			c := counts[lt]
			for k, th := range thresholds {
				if pct >= th {
					c[k]++
				}
			}
		})
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
