// Package plans is the domain model of plan limits: which plans exist, which
// tenant is on which plan, and what each plan allows. Sources (PostgreSQL in
// plans/postgres, a YAML file here) produce a Catalog; the billing package
// joins it with usage. Nothing here knows Prometheus or HTTP.
package plans

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"unicode"
	"unicode/utf8"
)

// Limits maps a metric type (the usage hash field name as written, such as
// "whatsappSessions") to its limit. Only positive limits are stored: a
// metric type that is absent is unlimited.
type Limits map[string]int64

// Plan is one plan and its limits.
type Plan struct {
	ID     string
	Name   string
	Limits Limits
	// Unreadable holds the limit types whose limit the source holds but
	// could not read (a negative or non-integer value), with the reason it
	// was skipped; nil when there are none. Such a type is not unlimited:
	// its limit is unknown, and nothing is derived from it.
	Unreadable map[string]string
}

// Catalog is one complete read of a plans source.
type Catalog struct {
	// Plans by plan id, including plans no tenant is on.
	Plans map[string]Plan
	// Tenants maps every tenant the source knows to its plan id; "" means
	// the tenant has no active plan and default limits apply. A plan id
	// that Plans lacks is a plan whose row vanished, is badly named or conflicts: the
	// tenant is on it, and its limits are unknown (not the defaults).
	Tenants map[string]string
	// Invalid counts rows or entries the source skipped, by reason (for
	// example "invalid_tenant_id", "negative_limit", "unknown_plan").
	Invalid map[string]int
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{Plans: map[string]Plan{}, Tenants: map[string]string{}, Invalid: map[string]int{}}
}

// Source loads the catalog. Load returns a complete catalog or an error,
// never a partial one. A catalog is never modified once loaded, by the
// source or its callers: a source may return the same one again when its
// data did not change (postgres.Source does).
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}

// Clone returns a deep copy of the limits; nil stays nil.
func (l Limits) Clone() Limits { return maps.Clone(l) }

// Clone returns a deep copy of the catalog, so that a source can hand out
// catalogs that callers may keep or change without affecting each other.
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

// maxPlanNameLen bounds plan names, which become label values.
const maxPlanNameLen = 256

// ValidatePlanName accepts any non-empty, printable UTF-8 name of bounded
// length: plan names are written by people, in any language, and shown as
// label values.
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
