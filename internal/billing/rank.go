package billing

import (
	"cmp"
	"slices"
)

// Pressure is how close a tenant is to its limits: its highest percentage
// of any limit, or -1 when it has no limit (unlimited or limits unknown).
func (t *TenantStatus) Pressure() float64 {
	top := -1.0
	t.EachLimit(func(_ string, _ int64, pct float64) { top = max(top, pct) })
	return top
}

// MostPressed returns up to n tenants, those closest to (or furthest past)
// a limit first; tenants without limits follow by messages used. It is how
// a cap on exported tenants keeps the ones people need to see. n <= 0 or
// n >= len(tenants) returns tenants unchanged.
func MostPressed(tenants []TenantStatus, n int) []TenantStatus {
	if n <= 0 || n >= len(tenants) {
		return tenants
	}
	type ranked struct {
		i        int
		pressure float64
		messages int64
	}
	rs := make([]ranked, len(tenants))
	for i := range tenants {
		messages, _ := tenants[i].Used("messages")
		rs[i] = ranked{i, tenants[i].Pressure(), messages}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(b.pressure, a.pressure); c != 0 {
			return c
		}
		if c := cmp.Compare(b.messages, a.messages); c != 0 {
			return c
		}
		return cmp.Compare(tenants[a.i].ID, tenants[b.i].ID)
	})
	out := make([]TenantStatus, n)
	for k := range out {
		out[k] = tenants[rs[k].i]
	}
	return out
}
