package api

import (
	"errors"
	"maps"
	"net/http"
	"slices"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// tenantUsageView is GET /api/v1/tenants/{tenant_id}/usage.
type tenantUsageView struct {
	TenantID    string     `json:"tenant_id"`
	GeneratedAt string     `json:"generated_at"`
	Period      periodView `json:"period"`
	// Plan is null when the tenant has no active plan (UsingDefaults) or
	// when limits are unknown.
	Plan *planRef `json:"plan"`
	// UsingDefaults is null when limits are unknown.
	UsingDefaults *bool `json:"using_defaults"`
	// LimitsKnown is false when a plans source is configured but has never
	// been read: then no limit, remaining or percentage is given.
	LimitsKnown     bool     `json:"limits_known"`
	PlansStale      bool     `json:"plans_stale"`
	PlansAgeSeconds *float64 `json:"plans_age_seconds"`
	// UsageRecorded is false when the tenant has no usage key this period
	// (it is known from the plans data only): every figure is then 0.
	UsageRecorded bool                   `json:"usage_recorded"`
	Metrics       map[string]metricUsage `json:"metrics"`
}

// serveTenantUsage reads one tenant's key (billing.Service.Tenant: no scan)
// and joins it with the last plans read.
func (h *Handler) serveTenantUsage(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	id, perr := parseTenantID(r.PathValue("tenant_id"))
	if perr != nil {
		h.problem(w, r, perr)
		return
	}
	ctx, cancel := h.timeout(r)
	defer cancel()
	tr, err := h.service.Tenant(ctx, id)
	switch {
	case err == nil:
	case errors.Is(err, billing.ErrUnknownTenant):
		h.problem(w, r, errUnknownTenant(id))
		return
	default:
		// billing.ErrUsageUnavailable, or the request's deadline.
		h.problem(w, r, errUsageUnavailable(err))
		return
	}
	renderJSON(r.Context(), w, h.newTenantUsageView(tr))
}

func (h *Handler) newTenantUsageView(tr *billing.TenantReport) *tenantUsageView {
	t := &tr.Status
	v := &tenantUsageView{
		TenantID:        t.ID,
		GeneratedAt:     timestamp(tr.At, tr.Period),
		Period:          newPeriodView(tr.Period, tr.At),
		Plan:            newPlanRef(t),
		LimitsKnown:     t.LimitsKnown && !t.PlanUnknown,
		PlansStale:      tr.Plans.Stale(),
		PlansAgeSeconds: plansAge(tr.Plans, tr.At),
		UsageRecorded:   t.Usage != nil,
		Metrics:         map[string]metricUsage{},
	}
	if t.LimitsKnown {
		v.UsingDefaults = &t.UsingDefaults
	}
	// The tenant's hash fields (those it could not read too), and every
	// type it has a limit for; for a hash that could not be read at all,
	// the configured metric types, each unavailable.
	var types []string
	t.Usage.Each(func(mt string, _ int64) { types = append(types, mt) })
	t.Usage.EachUnreadable(func(mt string, _ usage.Reason) { types = append(types, mt) })
	if _, ok := t.Usage.HashUnreadable(); ok {
		for _, mt := range h.service.MetricTypes() {
			types = append(types, mt.Name)
		}
	}
	if t.LimitsKnown {
		types = append(types, slices.Collect(maps.Keys(t.Limits))...)
		types = append(types, slices.Collect(maps.Keys(t.UnreadableLimits))...)
	}
	for _, mt := range types {
		v.Metrics[mt] = h.newMetricUsage(t, mt, tr.Period, tr.At)
	}
	return v
}
