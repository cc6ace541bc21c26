// Package plans is the domain model of plan limits: which plans exist, which
// tenant is on which plan, and what each plan allows. Sources (PostgreSQL in
// plans/postgres, a YAML file here) produce a Catalog; the billing package
// joins it with usage. Nothing here knows Prometheus or HTTP.
package plans

import "context"

// Limits maps a metric type (the usage hash field name as written, such as
// "whatsappSessions") to its limit. Only positive limits are stored: a
// metric type that is absent is unlimited.
type Limits map[string]int64

// Plan is one plan and its limits.
type Plan struct {
	ID     string
	Name   string
	Limits Limits
}

// Catalog is one complete read of a plans source.
type Catalog struct {
	// Plans by plan id, including plans no tenant is on.
	Plans map[string]Plan
	// Tenants maps every tenant the source knows to its plan id; "" means
	// the tenant has no active plan and default limits apply.
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
// never a partial one.
type Source interface {
	Load(ctx context.Context) (*Catalog, error)
}
