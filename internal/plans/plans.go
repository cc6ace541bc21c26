// Package plans holds the plans, each tenant's plan, and their limits.
package plans

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"unicode"
	"unicode/utf8"
)

// Limits maps a metric type to its positive limit; absent means unlimited.
type Limits map[string]int64

// Plan is one plan. Unreadable maps each type whose limit the source could
// not read (unknown, not unlimited) to the reason.
type Plan struct {
	ID         string
	Name       string
	Limits     Limits
	Unreadable map[string]string
}

// Catalog is one complete read of a source. A tenant on plan "" has the
// default limits; one on a plan Plans lacks has unknown limits. Invalid
// counts skipped entries by reason.
type Catalog struct {
	Plans   map[string]Plan
	Tenants map[string]string
	Invalid map[string]int
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{Plans: map[string]Plan{}, Tenants: map[string]string{}, Invalid: map[string]int{}}
}

// Source loads a complete catalog or fails. Nobody modifies a loaded
// catalog, so a source may return the same one again.
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}

// Clone returns a copy; nil stays nil.
func (l Limits) Clone() Limits { return maps.Clone(l) }

// Clone returns a deep copy of the catalog.
func (c *Catalog) Clone() *Catalog {
	out := NewCatalog()
	for id, p := range c.Plans {
		p.Limits = p.Limits.Clone()
		p.Unreadable = maps.Clone(p.Unreadable)
		out.Plans[id] = p
	}
	maps.Copy(out.Tenants, c.Tenants)
	maps.Copy(out.Invalid, c.Invalid)
	return out
}

const maxPlanNameLen = 256

// ValidatePlanName accepts a printable UTF-8 label value of bounded length.
func ValidatePlanName(name string) error {
	switch {
	case name == "":
		return errors.New("plan name is empty")
	case len(name) > maxPlanNameLen:
		return fmt.Errorf("plan name is longer than %d bytes", maxPlanNameLen)
	case !utf8.ValidString(name):
		return errors.New("plan name is not valid UTF-8")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("plan name contains the non-printable character %U", r)
		}
	}
	return nil
}
