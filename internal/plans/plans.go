// Package plans holds plan limits.
package plans

import (
	"context"
	"maps"
	"strings"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Limits maps a metric type to its limit; absent: unlimited.
type Limits map[string]int64

// Plan is one plan; Unreadable says why a limit is unknown.
type Plan struct {
	ID         string
	Name       string
	Limits     Limits
	Unreadable map[string]string
}

// Tenant is a tenant's row of a catalog: its plan ("" for the defaults) and
// its display name, never a metric label.
type Tenant struct {
	ID, Plan, Name string
}

// Source loads catalogs, which nobody modifies.
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}

const (
	maxPlanNameLen   = 256
	maxTenantNameLen = 256
)

// ValidateTenantName checks a tenant's display name.
func ValidateTenantName(name string) error {
	return usage.ValidateLabel("tenant name", name, maxTenantNameLen)
}

// ValidatePlanName checks a plan name.
func ValidatePlanName(name string) error {
	return usage.ValidateLabel("plan name", name, maxPlanNameLen)
}

// Diff returns the sorted tenants whose plan, plan's terms or name differ
// from old to next, ids of their own; a nil old catalog differs in every
// tenant of next.
func Diff(old, next *Catalog) []string {
	if old == next {
		return nil
	}
	if old == nil {
		old = NewCatalog()
	}
	if next == nil {
		next = NewCatalog()
	}
	if sameTable(old, next) {
		return diffPlans(old, next)
	}
	var out []string
	i, j := 0, 0
	for i < old.Len() || j < next.Len() {
		switch {
		case j == next.Len() || i < old.Len() && old.id(i) < next.id(j):
			out, i = append(out, strings.Clone(old.id(i))), i+1
		case i == old.Len() || next.id(j) < old.id(i):
			out, j = append(out, strings.Clone(next.id(j))), j+1
		default:
			if a := old.At(i); a != next.At(j) || !samePlan(old, next, a.Plan) {
				out = append(out, strings.Clone(a.ID))
			}
			i, j = i+1, j+1
		}
	}
	return out
}

// diffPlans is Diff of catalogs that share their tenants.
func diffPlans(old, next *Catalog) []string {
	changed := make([]bool, len(old.planIDs))
	some := false
	for p, id := range old.planIDs {
		changed[p] = !samePlan(old, next, id)
		some = some || changed[p]
	}
	if !some {
		return nil
	}
	var out []string
	for i, r := range old.rows {
		if changed[r.plan] {
			out = append(out, strings.Clone(old.id(i)))
		}
	}
	return out
}

// SamePlans reports whether both catalogs have the same plans and terms.
func SamePlans(old, next *Catalog) bool {
	if len(old.Plans) != len(next.Plans) {
		return false
	}
	for id := range old.Plans {
		if !samePlan(old, next, id) {
			return false
		}
	}
	return true
}

// samePlan: plan id has equal terms in both, or is in neither.
func samePlan(old, next *Catalog, id string) bool {
	p, inOld := old.Plans[id]
	q, inNext := next.Plans[id]
	return inOld == inNext && p.ID == q.ID && p.Name == q.Name && maps.Equal(p.Limits, q.Limits) &&
		maps.Equal(p.Unreadable, q.Unreadable)
}
