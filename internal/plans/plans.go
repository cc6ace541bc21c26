// Package plans holds plan limits.
package plans

import (
	"context"
	"maps"

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

// Catalog is one read of a source; plan "" means the defaults.
type Catalog struct {
	Plans   map[string]Plan
	Tenants map[string]string
	Invalid map[string]int
}

// NewCatalog returns an empty Catalog.
func NewCatalog() *Catalog {
	return &Catalog{Plans: map[string]Plan{}, Tenants: map[string]string{}, Invalid: map[string]int{}}
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
	maps.Copy(out.Invalid, c.Invalid)
	return out
}

const maxPlanNameLen = 256

// ValidatePlanName checks a plan name.
func ValidatePlanName(name string) error {
	return usage.ValidateLabel("plan name", name, maxPlanNameLen)
}
