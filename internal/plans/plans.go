// Package plans holds plan limits.
package plans

import (
	"context"
	"maps"
	"slices"

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

// Catalog is one read of a source; plan "" means the defaults. Names holds
// the tenants that have a name, never a metric label.
type Catalog struct {
	Plans   map[string]Plan
	Tenants map[string]string
	Names   map[string]string
	Invalid map[string]int
}

// NewCatalog returns an empty Catalog.
func NewCatalog() *Catalog {
	return &Catalog{Plans: map[string]Plan{}, Tenants: map[string]string{}, Names: map[string]string{}, Invalid: map[string]int{}}
}

// Source loads catalogs, which nobody modifies.
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}

// Clone returns a deep copy.
func (c *Catalog) Clone() *Catalog {
	out := NewCatalog()
	for id, p := range c.Plans {
		p.Limits = maps.Clone(p.Limits)
		p.Unreadable = maps.Clone(p.Unreadable)
		out.Plans[id] = p
	}
	maps.Copy(out.Tenants, c.Tenants)
	maps.Copy(out.Names, c.Names)
	maps.Copy(out.Invalid, c.Invalid)
	return out
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
// from old to next; a nil old catalog differs in every tenant of next.
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
	var out []string
	for t, p := range old.Tenants {
		if q, ok := next.Tenants[t]; !ok || p != q || !samePlan(old, next, p) || old.Names[t] != next.Names[t] {
			out = append(out, t)
		}
	}
	for t := range next.Tenants {
		if _, ok := old.Tenants[t]; !ok {
			out = append(out, t)
		}
	}
	slices.Sort(out)
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
