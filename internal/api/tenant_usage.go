package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// tenantUsageView is GET /api/v1/tenants/{tenant_id}/usage.
type tenantUsageView struct {
	TenantID        string                 `json:"tenant_id"`
	Name            *string                `json:"name"`
	GeneratedAt     string                 `json:"generated_at"`
	Period          periodView             `json:"period"`
	Plan            *planRef               `json:"plan"`
	UsingDefaults   *bool                  `json:"using_defaults"`
	LimitsKnown     bool                   `json:"limits_known"`
	PlansStale      bool                   `json:"plans_stale"`
	PlansAgeSeconds *float64               `json:"plans_age_seconds"`
	UsageRecorded   bool                   `json:"usage_recorded"`
	Metrics         map[string]metricUsage `json:"metrics"`
}

// serveTenantUsage reads one tenant's key, never scans.
func (h *Handler) serveTenantUsage(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	id := r.PathValue("tenant_id")
	if err := usage.ValidateID(usage.TenantID, id); err != nil {
		h.problem(w, r, errInvalidParam("tenant_id", "is not a valid tenant id: "+err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	switch tr, err := h.service.Tenant(ctx, id); {
	case errors.Is(err, billing.ErrUnknownTenant):
		h.problem(w, r, &problem{Type: ProblemUnknownTenant, Title: "Unknown tenant", Status: http.StatusNotFound,
			Detail: fmt.Sprintf("tenant %q has no usage this period and no row in the plans data", id)})
	case err != nil:
		h.problem(w, r, errUsageUnavailable(err))
	default:
		renderJSON(r.Context(), w, h.newTenantUsageView(tr))
	}
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
	if tr.Name != "" {
		v.Name = &tr.Name
	}
	// The tenant's fields and limits; the configured types for a hash unread.
	var types []string
	t.Usage.Each(func(mt string, _ int64) { types = append(types, mt) })
	t.Usage.EachUnreadable(func(mt string, _ usage.Reason) { types = append(types, mt) })
	if _, ok := t.Usage.HashUnreadable(); ok {
		types = append(types, usage.MetricTypeNames(h.service.MetricTypes())...)
	}
	if t.LimitsKnown {
		types = slices.AppendSeq(slices.AppendSeq(types, maps.Keys(t.Limits)), maps.Keys(t.UnreadableLimits))
	}
	for _, mt := range types {
		v.Metrics[mt] = h.newMetricUsage(t, mt, tr.Period, tr.At)
	}
	return v
}
