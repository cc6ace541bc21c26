package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// recentRead returns the billing core's recent full read, or answers 503
// without limits or, if needed, usage.
func (h *Handler) recentRead(w http.ResponseWriter, r *http.Request, needUsage bool) (*billing.Read, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	read, err := h.service.Recent(ctx)
	switch {
	case err != nil:
		h.problem(w, r, errUsageUnavailable(err))
	case needUsage && !read.Report.UsageUp():
		h.problem(w, r, errUsageUnavailable(read.Report.UsageErr))
	case !read.Report.Plans.LimitsKnown():
		h.problem(w, r, &problem{Type: ProblemLimitsUnavailable, Title: "Limits unavailable", Status: http.StatusServiceUnavailable,
			Detail: fmt.Sprintf("the plans source (%s) has never been read successfully, so no limit or percentage can be stated",
				read.Report.Plans.Source),
			cause: read.Report.Plans.Err, retryAfter: "30"})
	default:
		return read, true
	}
	return nil, false
}
