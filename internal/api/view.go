package api

import (
	"math"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
)

// The view layer: billing types turned into the JSON documents of
// openapi.yaml. Handlers only pick a view and write it.

// periodView is a billing period; times are RFC 3339 in the billing time
// zone.
type periodView struct {
	ID              string  `json:"id"`
	Start           string  `json:"start"`
	End             string  `json:"end"`
	ElapsedFraction float64 `json:"elapsed_fraction"`
}

func newPeriodView(p period.Period, at time.Time) periodView {
	return periodView{
		ID:              p.ID,
		Start:           p.Start.Format(time.RFC3339),
		End:             p.End.Format(time.RFC3339),
		ElapsedFraction: round(p.Elapsed(at), 6),
	}
}

// timestamp formats t in the period's (billing) time zone.
func timestamp(t time.Time, p period.Period) string {
	return t.In(p.Start.Location()).Format(time.RFC3339)
}

type planRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// newPlanRef returns the tenant's plan, nil when it has none (or limits
// are unknown).
func newPlanRef(t *billing.TenantStatus) *planRef {
	if !t.LimitsKnown || t.UsingDefaults || t.PlanID == "" || t.PlanID == billing.NoPlanID {
		return nil
	}
	return &planRef{ID: t.PlanID, Name: t.PlanName}
}

// metricUsage is one metric type of one tenant.
type metricUsage struct {
	// Used is null when the usage field could not be read (Unavailable).
	Used *int64 `json:"used"`
	// Unavailable says why some figures are null although the type is
	// limited or recorded: its usage field or its limit could not be read,
	// and nothing is derived from a number the exporter does not know.
	Unavailable *unavailableView `json:"unavailable"`
	// Limit, Remaining, Exceeded and Percentage are null when the type is
	// unlimited for the tenant, or when limits are unknown. Remaining,
	// Exceeded and Percentage are null too when the usage is unavailable.
	Limit *int64 `json:"limit"`
	// Remaining is limit - used, clamped at 0: Exceeded says when usage
	// went past the limit, Percentage by how much.
	Remaining  *int64   `json:"remaining"`
	Exceeded   *bool    `json:"exceeded"`
	Percentage *float64 `json:"percentage"`
	// MonthlyReset marks a counter that restarts each period (messages):
	// only those are projected.
	MonthlyReset bool `json:"monthly_reset"`
	// Projected is the end-of-period usage at the pace so far (used /
	// elapsed fraction), rounded; null for current counts, and before the
	// projection's minimum elapsed time.
	Projected           *int64   `json:"projected"`
	ProjectedPercentage *float64 `json:"projected_percentage"`
}

// monthlyReset says whether metricType restarts each period, as the
// metric types in force say (a reload may change them).
func (h *Handler) monthlyReset(metricType string) bool {
	for _, mt := range h.service.MetricTypes() {
		if mt.Name == metricType {
			return mt.MonthlyReset
		}
	}
	return false
}

// unavailableView is billing.Unavailable.
type unavailableView struct {
	// Source is "redis" for the usage field, else the plans source
	// ("postgres", "file") for the limit.
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// newMetricUsage computes one metric type's figures. The limit and the
// percentage come from billing.TenantStatus, as in /metrics; where it says
// the usage or the limit is unavailable, nothing is derived from it.
func (h *Handler) newMetricUsage(t *billing.TenantStatus, metricType string, p period.Period, at time.Time) metricUsage {
	m := metricUsage{MonthlyReset: h.monthlyReset(metricType)}
	used, usedKnown := t.Used(metricType)
	if usedKnown {
		m.Used = &used
	}
	if u := t.Unavailable(metricType); u.Is() {
		m.Unavailable = &unavailableView{Source: u.Source, Reason: u.Reason}
	}
	var limit int64
	if pct, ok := t.Percentage(metricType); ok {
		limit = t.Limits[metricType]
		remaining := max(limit-used, 0)
		exceeded := used > limit
		m.Limit, m.Remaining, m.Exceeded, m.Percentage = &limit, &remaining, &exceeded, &pct
	} else if l, ok := t.Limits[metricType]; ok && l > 0 && t.LimitsKnown && t.UnreadableLimits[metricType] == "" {
		// The usage is unavailable, the limit is not: it is still the
		// limit in force (as billing_usage_limit says).
		m.Limit = &l
	}
	if !usedKnown || !m.MonthlyReset {
		return m
	}
	exact, ok := billing.Projected(used, p, at)
	if !ok {
		return m
	}
	projected := int64(math.Round(exact))
	m.Projected = &projected
	if m.Percentage != nil {
		pp := round(100*float64(projected)/float64(limit), 4)
		m.ProjectedPercentage = &pp
	}
	return m
}

// limitsView is a set of limits; unlimited types are absent.
func limitsView(l plans.Limits) map[string]int64 {
	out := make(map[string]int64, len(l))
	for k, v := range l {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

// plansAge is how old the catalog in use is at at; nil when there is no
// plans source or it was never read.
func plansAge(ps billing.PlansState, at time.Time) *float64 {
	if !ps.Configured || ps.Catalog == nil {
		return nil
	}
	age := round(max(at.Sub(ps.LoadedAt).Seconds(), 0), 3)
	return &age
}

func round(v float64, digits int) float64 {
	f := math.Pow(10, float64(digits))
	return math.Round(v*f) / f
}
