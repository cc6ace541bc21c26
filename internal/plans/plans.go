// Package plans holds plan limits.
package plans

import (
	"context"
	"maps"
	"slices"
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

// Catalog is one read of a source; plan "" means the defaults. Its tenants
// are one table sorted by id, the only copy a catalog keeps of them.
type Catalog struct {
	Plans   map[string]Plan
	Invalid map[string]int
	tenants []Tenant
}

// NewCatalog returns a Catalog of tenants, keeping the first row of an id;
// it sorts tenants in place and keeps them.
func NewCatalog(tenants ...Tenant) *Catalog {
	slices.SortStableFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	tenants = slices.CompactFunc(tenants, func(a, b Tenant) bool { return a.ID == b.ID })
	return &Catalog{Plans: map[string]Plan{}, Invalid: map[string]int{}, tenants: slices.Clip(tenants)}
}

// Tenants returns the tenants sorted by id; callers must not modify them.
func (c *Catalog) Tenants() []Tenant {
	if c == nil {
		return nil
	}
	return c.tenants
}

func compareID(t Tenant, id string) int { return strings.Compare(t.ID, id) }

// Tenant returns tenant id's row.
func (c *Catalog) Tenant(id string) (Tenant, bool) {
	if c == nil {
		return Tenant{}, false
	}
	i, ok := slices.BinarySearchFunc(c.tenants, id, compareID)
	if !ok {
		return Tenant{}, false
	}
	return c.tenants[i], true
}

// SetTenant adds t or replaces its row; a catalog is changed only before
// it is shared.
func (c *Catalog) SetTenant(t Tenant) {
	i, found := slices.BinarySearchFunc(c.tenants, t.ID, compareID)
	if found {
		c.tenants[i] = t
		return
	}
	c.tenants = slices.Insert(c.tenants, i, t)
}

// RemoveTenant removes tenant id's row, under SetTenant's rule.
func (c *Catalog) RemoveTenant(id string) {
	c.tenants = slices.DeleteFunc(c.tenants, func(t Tenant) bool { return t.ID == id })
}

// Source loads catalogs, which nobody modifies.
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}

// Clone returns a deep copy.
func (c *Catalog) Clone() *Catalog {
	out := NewCatalog(slices.Clone(c.tenants)...)
	for id, p := range c.Plans {
		p.Limits = maps.Clone(p.Limits)
		p.Unreadable = maps.Clone(p.Unreadable)
		out.Plans[id] = p
	}
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
	a, b := old.tenants, next.tenants
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0].ID < b[0].ID:
			out, a = append(out, a[0].ID), a[1:]
		case len(a) == 0 || b[0].ID < a[0].ID:
			out, b = append(out, b[0].ID), b[1:]
		default:
			if a[0] != b[0] || !samePlan(old, next, a[0].Plan) {
				out = append(out, a[0].ID)
			}
			a, b = a[1:], b[1:]
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
