package api

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
)

// plansView is GET /api/v1/plans.
type plansView struct {
	GeneratedAt           string       `json:"generated_at"`
	DataAgeSeconds        float64      `json:"data_age_seconds"`
	Source                *string      `json:"source"`
	PlansStale            bool         `json:"plans_stale"`
	PlansAgeSeconds       *float64     `json:"plans_age_seconds"`
	TenantCountsAvailable bool         `json:"tenant_counts_available"`
	Defaults              defaultsView `json:"defaults"`
	Plans                 []planView   `json:"plans"`
}

type defaultsView struct {
	Limits  map[string]int64 `json:"limits"`
	Tenants *int             `json:"tenants"`
}

type planView struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Limits           map[string]int64  `json:"limits"`
	UnreadableLimits map[string]string `json:"unreadable_limits"`
	Tenants          *int              `json:"tenants"`
}

// servePlans answers from the billing core's recent full read.
func (h *Handler) servePlans(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	read, ok := h.recentRead(w, r, false)
	if !ok {
		return
	}
	rep := read.Report
	v := &plansView{
		GeneratedAt:           timestamp(rep.At, rep.Period),
		DataAgeSeconds:        round(read.Age().Seconds(), 3),
		PlansStale:            rep.Plans.Stale(),
		PlansAgeSeconds:       plansAge(rep.Plans, rep.At),
		TenantCountsAvailable: rep.PerPlan != nil,
		Defaults:              defaultsView{Limits: limitsView(h.service.Defaults())},
		Plans:                 []planView{},
	}
	if rep.Plans.Configured {
		v.Source = &rep.Plans.Source
	}
	counts := map[string]int{}
	for _, pc := range rep.PerPlan {
		counts[pc.PlanID] = pc.Tenants
	}
	count := func(id string) *int {
		if rep.PerPlan == nil {
			return nil
		}
		n := counts[id]
		return &n
	}
	v.Defaults.Tenants = count(billing.NoPlanID)
	var catalog map[string]plans.Plan
	if rep.Plans.Catalog != nil {
		catalog = rep.Plans.Catalog.Plans
	}
	for id, p := range catalog {
		unreadable := map[string]string{}
		maps.Copy(unreadable, p.Unreadable)
		v.Plans = append(v.Plans, planView{ID: p.ID, Name: p.Name, Limits: limitsView(p.Limits),
			UnreadableLimits: unreadable, Tenants: count(id)})
	}
	// A plan id without a readable row is listed, with unknown limits.
	for _, pc := range rep.PerPlan {
		if _, listed := catalog[pc.PlanID]; !listed && pc.PlanID != billing.NoPlanID {
			v.Plans = append(v.Plans, planView{ID: pc.PlanID, UnreadableLimits: map[string]string{}, Tenants: count(pc.PlanID)})
		}
	}
	slices.SortStableFunc(v.Plans, func(a, b planView) int { return strings.Compare(a.ID, b.ID) })
	renderJSON(r.Context(), w, v)
}
