package billing

import (
	"slices"
	"strings"
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
	// Seq numbers the catalogs; Changed lists the tenants whose terms
	// differ from catalog Seq-1's.
	Seq     uint64
	Changed []string
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

	limits        []LimitCheck // sorted by type
	messagesLimit int64        // the readable messages limit, 0: none
}

// NewTerms prepares t for a TenantStatus.
func NewTerms(t Terms, source string) *Terms {
	if t.LimitsKnown {
		t.limits = sortedLimits(t.Limits, t.UnreadableLimits, source)
	}
	for _, c := range t.limits {
		if c.Type == messagesType {
			t.messagesLimit = c.Limit
		}
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

	Tenants       Statuses    // sorted by id
	PerPlan       []PlanCount // nil when usage or limits are unknown
	OverThreshold []ThresholdCount

	// Seq numbers the joins. When Base is not 0, Tenants differ from join
	// Base's only in the tenants Changed names, sorted: changed, come or gone.
	Seq, Base uint64
	Changed   []string

	rankings rankings
	monthly  map[string]bool // the metric types projected
	counts   fleetCounts
	usageSeq uint64
	ix       limitIndex
	others   map[string]bool // the metric types kept beyond the configured
}

// UsageUp reports whether usage was read.
func (r *Report) UsageUp() bool { return r.UsageErr == nil && r.Usage != nil }

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

// TenantName returns the catalog's name of the tenant, "" without one;
// names stay out of the statuses, which are held per tenant.
func (r *Report) TenantName(tenantID string) string {
	t, _ := r.Plans.Catalog.Tenant(tenantID)
	return t.Name
}

// TenantReport is one tenant's join.
type TenantReport struct {
	At     time.Time
	Period period.Period
	Status TenantStatus
	Name   string // the catalog's; "" without one
	Plans  PlansState

	monthly map[string]bool
}
