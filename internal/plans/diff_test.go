package plans

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	base := func() *Catalog {
		c := NewCatalog(Tenant{ID: "a", Plan: "1"}, Tenant{ID: "b", Plan: "1", Name: "Bee"}, Tenant{ID: "c", Plan: "2"},
			Tenant{ID: "d"},            // no plan
			Tenant{ID: "e", Plan: "7"}) // unknown plan
		c.Plans["1"] = Plan{ID: "1", Name: "starter", Limits: Limits{"messages": 5000}}
		c.Plans["2"] = Plan{ID: "2", Name: "pro", Limits: Limits{"messages": 50000}}
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
		{"a tenant moved plan", base(), func(c *Catalog) { c.SetTenant(Tenant{ID: "a", Plan: "2"}) }, []string{"a"}},
		{"a tenant lost its plan", base(), func(c *Catalog) { c.SetTenant(Tenant{ID: "c"}) }, []string{"c"}},
		{"a tenant added", base(), func(c *Catalog) { c.SetTenant(Tenant{ID: "f", Plan: "2"}) }, []string{"f"}},
		{"a tenant named", base(), func(c *Catalog) { c.SetTenant(Tenant{ID: "a", Plan: "1", Name: "Acme"}) }, []string{"a"}},
		{"a tenant renamed", base(), func(c *Catalog) { c.SetTenant(Tenant{ID: "b", Plan: "1", Name: "Bee Ltda"}) }, []string{"b"}},
		{"a tenant's name removed", base(), func(c *Catalog) { c.SetTenant(Tenant{ID: "b", Plan: "1"}) }, []string{"b"}},
		{"a tenant removed", base(), func(c *Catalog) { c.RemoveTenant("b") }, []string{"b"}},
		{"an unknown plan appeared", base(), func(c *Catalog) { c.Plans["7"] = Plan{ID: "7", Name: "x"} }, []string{"e"}},
		{"an unused plan removed", base(), func(c *Catalog) {
			delete(c.Plans, "2")
			c.RemoveTenant("c")
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

func TestNewCatalogSortsAndKeepsTheFirstRow(t *testing.T) {
	t.Parallel()
	c := NewCatalog(Tenant{ID: "b", Plan: "2", Name: "Bee"}, Tenant{ID: "a", Plan: "1"}, Tenant{ID: "b", Plan: "3", Name: "Other"},
		Tenant{ID: "10", Name: "Ten"}, Tenant{ID: "c", Plan: "1", Name: "Cee"})
	want := []Tenant{{ID: "10", Name: "Ten"}, {ID: "a", Plan: "1"}, {ID: "b", Plan: "2", Name: "Bee"}, {ID: "c", Plan: "1", Name: "Cee"}}
	if got := c.Tenants(); !slices.Equal(got, want) {
		t.Fatalf("Tenants() = %v, want %v", got, want)
	}
	if c.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", c.Len(), len(want))
	}
	for i, w := range want {
		if got := c.At(i); got != w {
			t.Errorf("At(%d) = %v, want %v", i, got, w)
		}
	}
	for _, w := range want {
		if got, ok := c.Tenant(w.ID); !ok || got != w {
			t.Errorf("Tenant(%q) = %v, %v, want %v", w.ID, got, ok, w)
		}
	}
	if _, ok := c.Tenant("d"); ok {
		t.Error("Tenant(\"d\") found a tenant the catalog does not hold")
	}
	c.SetTenant(Tenant{ID: "1", Plan: "2"})
	c.SetTenant(Tenant{ID: "a", Plan: "2", Name: "A"})
	c.RemoveTenant("b")
	want = []Tenant{{ID: "1", Plan: "2"}, {ID: "10", Name: "Ten"}, {ID: "a", Plan: "2", Name: "A"}, {ID: "c", Plan: "1", Name: "Cee"}}
	if got := c.Tenants(); !slices.Equal(got, want) {
		t.Errorf("after SetTenant and RemoveTenant: %v, want %v", got, want)
	}
	var none *Catalog
	if _, ok := none.Tenant("a"); ok || none.Tenants() != nil || none.Len() != 0 {
		t.Error("a nil catalog holds tenants")
	}
}
