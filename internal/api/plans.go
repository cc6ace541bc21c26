package api

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// plansView is GET /api/v1/plans.
type plansView struct {
	GeneratedAt    string  `json:"generated_at"`
	DataAgeSeconds float64 `json:"data_age_seconds"`
	// Source is "postgres" or "file"; null when no plans source is
	// configured and every tenant is on the defaults.
	Source          *string  `json:"source"`
	PlansStale      bool     `json:"plans_stale"`
	PlansAgeSeconds *float64 `json:"plans_age_seconds"`
	// TenantCountsAvailable is false when usage could not be read: a
	// tenant is known by its usage key or its plans row, so without Redis
	// the counts (null) would be half a picture.
	TenantCountsAvailable bool         `json:"tenant_counts_available"`
	Defaults              defaultsView `json:"defaults"`
	Plans                 []planView   `json:"plans"`
}

type defaultsView struct {
	Limits  map[string]int64 `json:"limits"`
	Tenants *int             `json:"tenants"`
}

type planView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Limits is null for a plan id tenants point at with no readable plan
	// row: its limits are unknown.
	Limits map[string]int64 `json:"limits"`
	// UnreadableLimits are limits the source holds but could not read:
	// absent from Limits, yet not unlimited.
	UnreadableLimits map[string]string `json:"unreadable_limits"`
	Tenants          *int              `json:"tenants"`
}

// servePlans answers from the billing core's recent full read: the plans of its catalog,
// and its per-plan tenant counts (those of billing_tenants_per_plan).
func (h *Handler) servePlans(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	read, ok := h.recentRead(w, r)
	if !ok {
		return
	}
	rep := read.Report
	if !rep.Plans.LimitsKnown() {
		h.problem(w, r, errLimitsUnavailable(rep.Plans.Source, rep.Plans.Err))
		return
	}
	renderJSON(r.Context(), w, h.newPlansView(read))
}

func (h *Handler) newPlansView(read *billing.Read) *plansView {
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
	cat := rep.Plans.Catalog
	if cat != nil {
		for _, id := range slices.Sorted(maps.Keys(cat.Plans)) {
			p := cat.Plans[id]
			v.Plans = append(v.Plans, planView{ID: p.ID, Name: p.Name, Limits: limitsView(p.Limits),
				UnreadableLimits: unreadableView(p.Unreadable), Tenants: count(id)})
		}
	}
	// A plan id tenants point at without a readable plan row (deleted with
	// no foreign key, or badly named): listed, as billing_tenants_per_plan
	// counts it, with null limits, which are unknown, not unlimited.
	for _, pc := range rep.PerPlan {
		if pc.PlanID == billing.NoPlanID {
			continue
		}
		if cat != nil {
			if _, listed := cat.Plans[pc.PlanID]; listed {
				continue
			}
		}
		v.Plans = append(v.Plans, planView{ID: pc.PlanID, UnreadableLimits: map[string]string{}, Tenants: count(pc.PlanID)})
	}
	slices.SortStableFunc(v.Plans, func(a, b planView) int { return strings.Compare(a.ID, b.ID) })
	return v
}

// unreadableView is a plan's unreadable limits; an empty object, not null,
// when there are none.
func unreadableView(u map[string]string) map[string]string {
	if u == nil {
		return map[string]string{}
	}
	return u
}
