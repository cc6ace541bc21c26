package testserver

import "github.com/billing-exporter/billing_exporter/internal/plans"

// CatalogView is a plans catalog as maps, for literal expectations.
type CatalogView struct {
	Plans   map[string]plans.Plan
	Tenants map[string]string // tenant → plan
	Names   map[string]string
	Invalid map[string]int
}

// ViewCatalog returns c as a CatalogView.
func ViewCatalog(c *plans.Catalog) *CatalogView {
	v := &CatalogView{Plans: c.Plans, Tenants: map[string]string{}, Names: map[string]string{}, Invalid: c.Invalid}
	for _, t := range c.Tenants() {
		v.Tenants[t.ID] = t.Plan
		if t.Name != "" {
			v.Names[t.ID] = t.Name
		}
	}
	return v
}
