// Package plans holds plan limits.
package plans

import (
	"context"
	"iter"
	"maps"
	"math"
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
	rows    []row
	planIDs []string // what row.plan indexes
	names   string   // the rows' names back to back
}

// row is a tenant; its name runs in names from the row before's nameEnd
// to its own.
type row struct {
	id      string
	plan    uint32
	nameEnd uint32
}

// NewCatalog returns a Catalog of tenants, sorted in place, keeping the
// first row of an id; names past what a uint32 end reaches are dropped.
func NewCatalog(tenants ...Tenant) *Catalog {
	slices.SortStableFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	tenants = slices.CompactFunc(tenants, func(a, b Tenant) bool { return a.ID == b.ID })
	c := &Catalog{Plans: map[string]Plan{}, Invalid: map[string]int{}, rows: make([]row, len(tenants))}
	size := 0
	for _, t := range tenants {
		size += len(t.Name)
	}
	var names strings.Builder
	names.Grow(int(min(uint64(size), math.MaxUint32)))
	planIndex := map[string]uint32{}
	for i, t := range tenants {
		p, ok := planIndex[t.Plan]
		if !ok {
			p = uint32(len(c.planIDs))
			planIndex[t.Plan] = p
			c.planIDs = append(c.planIDs, t.Plan)
		}
		if uint64(names.Len())+uint64(len(t.Name)) <= math.MaxUint32 {
			names.WriteString(t.Name)
		}
		c.rows[i] = row{id: t.ID, plan: p, nameEnd: uint32(names.Len())}
	}
	c.names = names.String()
	return c
}

// Len returns the number of tenants.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.rows)
}

// At returns the i-th tenant by id.
func (c *Catalog) At(i int) Tenant {
	r, start := c.rows[i], uint32(0)
	if i > 0 {
		start = c.rows[i-1].nameEnd
	}
	return Tenant{ID: r.id, Plan: c.planIDs[r.plan], Name: c.names[start:r.nameEnd]}
}

// All yields the tenants sorted by id.
func (c *Catalog) All() iter.Seq[Tenant] {
	return func(yield func(Tenant) bool) {
		for i := range c.Len() {
			if !yield(c.At(i)) {
				return
			}
		}
	}
}

// Tenants returns a copy of the tenants, sorted by id.
func (c *Catalog) Tenants() []Tenant {
	if c.Len() == 0 {
		return nil
	}
	return slices.Collect(c.All())
}

// Tenant returns tenant id's row.
func (c *Catalog) Tenant(id string) (Tenant, bool) {
	if c == nil {
		return Tenant{}, false
	}
	i, ok := slices.BinarySearchFunc(c.rows, id, func(r row, id string) int { return strings.Compare(r.id, id) })
	if !ok {
		return Tenant{}, false
	}
	return c.At(i), true
}

// SetTenant adds t or replaces its row; a catalog is changed only before
// it is shared.
func (c *Catalog) SetTenant(t Tenant) {
	c.replaceTenants(append([]Tenant{t}, c.Tenants()...))
}

// RemoveTenant removes tenant id's row, under SetTenant's rule.
func (c *Catalog) RemoveTenant(id string) {
	c.replaceTenants(slices.DeleteFunc(c.Tenants(), func(t Tenant) bool { return t.ID == id }))
}

func (c *Catalog) replaceTenants(tenants []Tenant) {
	next := NewCatalog(tenants...)
	c.rows, c.planIDs, c.names = next.rows, next.planIDs, next.names
}

// Source loads catalogs, which nobody modifies.
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}

// Clone returns a deep copy.
func (c *Catalog) Clone() *Catalog {
	out := NewCatalog(c.Tenants()...)
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
	i, j := 0, 0
	for i < old.Len() || j < next.Len() {
		switch {
		case j == next.Len() || i < old.Len() && old.rows[i].id < next.rows[j].id:
			out, i = append(out, old.rows[i].id), i+1
		case i == old.Len() || next.rows[j].id < old.rows[i].id:
			out, j = append(out, next.rows[j].id), j+1
		default:
			if a := old.At(i); a != next.At(j) || !samePlan(old, next, a.Plan) {
				out = append(out, a.ID)
			}
			i, j = i+1, j+1
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
