package plans

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	base := func() *Catalog {
		c := NewCatalog()
		c.Plans["1"] = Plan{ID: "1", Name: "starter", Limits: Limits{"messages": 5000}}
		c.Plans["2"] = Plan{ID: "2", Name: "pro", Limits: Limits{"messages": 50000}}
		c.Tenants["a"] = "1"
		c.Tenants["b"] = "1"
		c.Tenants["c"] = "2"
		c.Tenants["d"] = ""  // no plan
		c.Tenants["e"] = "7" // unknown plan
		c.Names["b"] = "Bee"
		return c
	}
	same := base()
	cases := []struct {
		name   string
		old    *Catalog
		change func(c *Catalog)
		want   []string
	}{
		{"the same catalog", same, nil, nil},
		{"an equal catalog", base(), func(*Catalog) {}, nil},
		{"first read", nil, func(*Catalog) {}, []string{"a", "b", "c", "d", "e"}},
		{"a plan's limit changed", base(), func(c *Catalog) { c.Plans["1"] = Plan{ID: "1", Name: "starter", Limits: Limits{"messages": 6000}} }, []string{"a", "b"}},
		{"a plan renamed", base(), func(c *Catalog) { c.Plans["2"] = Plan{ID: "2", Name: "pro+", Limits: Limits{"messages": 50000}} }, []string{"c"}},
		{"a limit became unreadable", base(), func(c *Catalog) {
			c.Plans["2"] = Plan{ID: "2", Name: "pro", Limits: Limits{}, Unreadable: map[string]string{"messages": "negative"}}
		}, []string{"c"}},
		{"a tenant moved plan", base(), func(c *Catalog) { c.Tenants["a"] = "2" }, []string{"a"}},
		{"a tenant lost its plan", base(), func(c *Catalog) { c.Tenants["c"] = "" }, []string{"c"}},
		{"a tenant added", base(), func(c *Catalog) { c.Tenants["f"] = "2" }, []string{"f"}},
		{"a tenant named", base(), func(c *Catalog) { c.Names["a"] = "Acme" }, []string{"a"}},
		{"a tenant renamed", base(), func(c *Catalog) { c.Names["b"] = "Bee Ltda" }, []string{"b"}},
		{"a tenant's name removed", base(), func(c *Catalog) { delete(c.Names, "b") }, []string{"b"}},
		{"a tenant removed", base(), func(c *Catalog) { delete(c.Tenants, "b") }, []string{"b"}},
		{"an unknown plan appeared", base(), func(c *Catalog) { c.Plans["7"] = Plan{ID: "7", Name: "x"} }, []string{"e"}},
		{"an unused plan removed", base(), func(c *Catalog) {
			delete(c.Plans, "2")
			delete(c.Tenants, "c")
		}, []string{"c"}},
		{"everything gone", base(), nil, []string{"a", "b", "c", "d", "e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var next *Catalog
			switch {
			case tc.old == same:
				next = same
			case tc.change != nil:
				next = base()
				tc.change(next)
			}
			if got := Diff(tc.old, next); !slices.Equal(got, tc.want) {
				t.Errorf("Diff = %v, want %v", got, tc.want)
			}
		})
	}
}
