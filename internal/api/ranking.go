package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// ranked is a tenant and its percentage of one limit type.
type ranked struct {
	idx int
	pct float64
}

// rankings keeps the list orders of the latest read, so that paging
// sorts once per read and limit type.
type rankings struct {
	mu     sync.Mutex
	read   *billing.Read
	byType map[string][]ranked
}

// of returns read's tenants limited in limitType, highest first.
func (rs *rankings) of(read *billing.Read, limitType string) []ranked {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.read != read {
		rs.read, rs.byType = read, map[string][]ranked{}
	}
	if rk, ok := rs.byType[limitType]; ok {
		return rk
	}
	tenants := read.Report.Tenants
	var rk []ranked
	for i := range tenants {
		if pct, ok := tenants[i].Percentage(limitType); ok {
			rk = append(rk, ranked{idx: i, pct: pct})
		}
	}
	slices.SortFunc(rk, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.pct, a.pct), strings.Compare(tenants[a.idx].ID, tenants[b.idx].ID))
	})
	rs.byType[limitType] = rk
	return rk
}

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
