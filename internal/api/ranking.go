package api

import (
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// ranked is a tenant of a report with a percentage of one limit type.
type ranked struct {
	idx int // into Report.Tenants
	pct float64
}

// rankings keeps the list orders of the latest read the list was asked
// about, so that paging through a long list sorts once per read and limit
// type. Which read that is, and when to read again, is the billing core's
// decision (billing.Service.Recent); this is only a view's index of it.
type rankings struct {
	mu     sync.Mutex
	read   *billing.Read
	byType map[string][]ranked
}

// of returns the tenants of read that have a percentage of limitType,
// highest first, ties by tenant id (byte order).
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
		switch {
		case a.pct > b.pct:
			return -1
		case a.pct < b.pct:
			return 1
		}
		return strings.Compare(tenants[a.idx].ID, tenants[b.idx].ID)
	})
	// Limit types are checked against the plans before they get here, so
	// this map holds a handful of entries.
	rs.byType[limitType] = rk
	return rk
}

// recentRead returns the billing core's recent full read for the list and
// the plans, or answers 503 and returns false when none could be had in the
// request's time.
func (h *Handler) recentRead(w http.ResponseWriter, r *http.Request) (*billing.Read, bool) {
	ctx, cancel := h.timeout(r)
	defer cancel()
	read, err := h.service.Recent(ctx)
	if err != nil {
		h.problem(w, r, errUsageUnavailable(err))
		return nil, false
	}
	return read, true
}
