package api

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

type periodView struct {
	ID              string  `json:"id"`
	Start           string  `json:"start"`
	End             string  `json:"end"`
	ResetsAt        string  `json:"resets_at"`
	ElapsedFraction float64 `json:"elapsed_fraction"`
}

func newPeriodView(p period.Period, at time.Time) periodView {
	end := p.End.Format(time.RFC3339)
	return periodView{ID: p.ID, Start: p.Start.Format(time.RFC3339), End: end, ResetsAt: end,
		ElapsedFraction: round(p.Elapsed(at), 6)}
}

// timestamp formats t in the billing time zone.
func timestamp(t time.Time, p period.Period) string {
	return t.In(p.Start.Location()).Format(time.RFC3339)
}

type planRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// newPlanRef returns the tenant's plan, nil without one.
func newPlanRef(t *billing.TenantStatus) *planRef {
	if !t.LimitsKnown || t.UsingDefaults || t.PlanID == "" || t.PlanID == billing.NoPlanID {
		return nil
	}
	return &planRef{ID: t.PlanID, Name: t.PlanName}
}

// metricUsage is one metric type of one tenant.
type metricUsage struct {
	Used                *int64           `json:"used"`
	Unavailable         *unavailableView `json:"unavailable"`
	Limit               *int64           `json:"limit"`
	Remaining           *int64           `json:"remaining"`
	Exceeded            *bool            `json:"exceeded"`
	Reached             *bool            `json:"reached"`
	Band                *string          `json:"band"`
	Percentage          *float64         `json:"percentage"`
	MonthlyReset        bool             `json:"monthly_reset"`
	Projected           *int64           `json:"projected"`
	ProjectedPercentage *float64         `json:"projected_percentage"`
	ProjectedLimitDate  *string          `json:"projected_limit_date"`
}

type unavailableView struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// newMetricUsage gives billing's figures, as /metrics does; nothing is
// derived from a figure unknown.
func (h *Handler) newMetricUsage(t *billing.TenantStatus, metricType string, p period.Period, at time.Time) metricUsage {
	mts := h.service.MetricTypes()
	i := slices.IndexFunc(mts, func(mt usage.MetricType) bool { return mt.Name == metricType })
	m := metricUsage{MonthlyReset: i >= 0 && mts[i].MonthlyReset}
	used, usedKnown := t.Usage.Value(metricType)
	if usedKnown {
		m.Used = &used
	}
	if u := t.Unavailable(metricType); u.Is() {
		m.Unavailable = &unavailableView{Source: u.Source, Reason: u.Reason}
	}
	var limit int64
	if s, ok := t.Standing(metricType, m.MonthlyReset, p, at); ok {
		limit = s.Limit
		remaining := max(limit-used, 0)
		exceeded := used > limit
		band := bandName(s.Band)
		m.Limit, m.Remaining, m.Exceeded, m.Percentage = &limit, &remaining, &exceeded, &s.Percentage
		m.Reached, m.Band = &s.Reached, &band
		if !s.ReachesAt.IsZero() {
			day := s.ReachesAt.Format(time.DateOnly)
			m.ProjectedLimitDate = &day
		}
	} else if l, ok := t.Limits[metricType]; ok && l > 0 && t.LimitsKnown && t.UnreadableLimits[metricType] == "" {
		// The usage is unknown, the limit still in force.
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

// bandName names BandNone "none" for JSON.
func bandName(b billing.Band) string {
	if b == billing.BandNone {
		return "none"
	}
	return b.String()
}

// limitsView leaves out the unlimited types.
func limitsView(l plans.Limits) map[string]int64 {
	out := map[string]int64{}
	maps.Copy(out, l)
	maps.DeleteFunc(out, func(_ string, v int64) bool { return v <= 0 })
	return out
}

// plansAge is the catalog's age at at; nil without one.
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
