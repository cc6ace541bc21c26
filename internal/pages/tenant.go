package pages

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// tenantPage is /tenants/{tenant_id}.
type tenantPage struct {
	ID, Name     string
	Plan         string
	ResetsAt     string
	Zone         string
	GeneratedAt  string
	Bars         []bar
	Others       []other
	Notes        []string
	DashboardURL string
	NearPercent  float64
	LimitPercent float64
}

// bar is one limit.
type bar struct {
	Type          string
	Used, Limit   string
	Percentage    float64
	Band          string
	Reached       bool
	ProjectedDay  string
	ProjectedUsed string
	Seat          bool // reached only over the limit
}

// other is a metric type without a percentage.
type other struct {
	Type, Used, Why string
}

const dayLayout = "Monday 2 January 2006"

func (h *Handler) newTenantPage(tr *billing.TenantReport) *tenantPage {
	t := &tr.Status
	loc := tr.Period.Start.Location()
	p := &tenantPage{
		ID: t.ID, Name: tr.Name,
		ResetsAt:     tr.Period.End.In(loc).Format(dayLayout + ", 15:04"),
		Zone:         loc.String(),
		GeneratedAt:  tr.At.In(loc).Format(time.DateTime),
		NearPercent:  billing.NearLimitPercent,
		LimitPercent: billing.LimitPercent,
	}
	if h.grafanaURL != "" {
		p.DashboardURL = DashboardURL(h.grafanaURL, t.ID)
	}
	switch {
	case !t.LimitsKnown:
		p.Plan = "unknown: the plans source has never been read"
	case t.UsingDefaults:
		p.Plan = "no active plan (default limits)"
		p.Notes = append(p.Notes, "This tenant has no active plan: the default limits apply.")
	case t.PlanUnknown:
		p.Plan = fmt.Sprintf("plan %s (no readable row in the plans data)", t.PlanID)
		p.Notes = append(p.Notes, "The tenant's plan has no readable row in the plans data: its limits are unknown, not unlimited.")
	default:
		p.Plan = fmt.Sprintf("%s (plan %s)", t.PlanName, t.PlanID)
	}
	if t.Usage == nil {
		p.Notes = append(p.Notes, "No usage recorded this period: the tenant is known from the plans data only.")
	}
	if tr.Plans.Stale() {
		p.Notes = append(p.Notes, fmt.Sprintf("The plans source cannot be read: the limits are those of the last read, %s old.",
			tr.At.Sub(tr.Plans.LoadedAt).Round(time.Second)))
	}
	if reason, ok := t.Usage.HashUnreadable(); ok {
		p.Notes = append(p.Notes, fmt.Sprintf("The usage hash could not be read (%s): no figures this period.", reason))
	}
	shown := map[string]bool{}
	for _, s := range tr.Standings() {
		shown[s.Type] = true
		b := bar{Type: s.Type, Used: amount(s.Type, s.Used), Limit: amount(s.Type, s.Limit), Percentage: s.Percentage,
			Band: s.Band.String(), Reached: s.Reached, Seat: slices.Contains(billing.SeatLimitTypes, s.Type)}
		if !s.ReachesAt.IsZero() {
			b.ProjectedDay = s.ReachesAt.Format(dayLayout)
		}
		if s.ProjectedOK {
			b.ProjectedUsed = amount(s.Type, int64(s.Projected+0.5))
		}
		p.Bars = append(p.Bars, b)
	}
	var types []string
	t.Usage.Each(func(mt string, _ int64) { types = append(types, mt) })
	t.Usage.EachUnreadable(func(mt string, _ usage.Reason) { types = append(types, mt) })
	if t.LimitsKnown {
		types = slices.AppendSeq(slices.AppendSeq(types, maps.Keys(t.Limits)), maps.Keys(t.UnreadableLimits))
	}
	slices.Sort(types)
	for _, mt := range slices.Compact(types) {
		if shown[mt] {
			continue
		}
		o := other{Type: mt, Used: "–", Why: "no limit"}
		if v, ok := t.Usage.Value(mt); ok {
			o.Used = amount(mt, v)
		}
		if u := t.Unavailable(mt); u.Is() {
			o.Why = fmt.Sprintf("skipped: %s could not be read (%s)", map[bool]string{true: "the usage field", false: "the limit"}[u.Source == billing.UsageSource], u.Reason)
			p.Notes = append(p.Notes, fmt.Sprintf("%s: %s.", mt, o.Why))
		} else if !t.LimitsKnown || t.PlanUnknown {
			o.Why = "limit unknown"
		}
		p.Others = append(p.Others, o)
	}
	return p
}
