package plans

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestBuilderResolvesRowsOfAnID: rows of one id reach resolve in the order
// added, which keeps one of them, a merge, or none.
func TestBuilderResolvesRowsOfAnID(t *testing.T) {
	t.Parallel()
	firstName := func(rows []Tenant) (Tenant, bool) {
		t := rows[0]
		for _, r := range rows[1:] {
			if r.Plan != t.Plan {
				return t, false
			}
			t.Name = cmp.Or(t.Name, r.Name)
		}
		return t, true
	}
	for _, tc := range []struct {
		name    string
		rows    []Tenant
		want    []Tenant
		resolve int // calls
		merge   func(rows []Tenant) (Tenant, bool)
	}{
		{name: "none"},
		{name: "one row each", rows: []Tenant{{ID: "b", Plan: "1", Name: "Bee"}, {ID: "a"}},
			want: []Tenant{{ID: "a"}, {ID: "b", Plan: "1", Name: "Bee"}}},
		{name: "merged", rows: []Tenant{{ID: "b", Plan: "1"}, {ID: "a", Plan: "2"}, {ID: "b", Plan: "1", Name: "Bee"}, {ID: "b", Plan: "1", Name: "Other"}},
			want: []Tenant{{ID: "a", Plan: "2"}, {ID: "b", Plan: "1", Name: "Bee"}}, resolve: 1},
		{name: "dropped", rows: []Tenant{{ID: "b", Plan: "1", Name: "Bee"}, {ID: "c", Plan: "1"}, {ID: "b", Plan: "2"}},
			want: []Tenant{{ID: "c", Plan: "1"}}, resolve: 1},
		{name: "a longer name than any row's", rows: []Tenant{{ID: "a"}, {ID: "a"}, {ID: "z", Name: "Zed"}},
			want: []Tenant{{ID: "a", Name: "merged name"}, {ID: "z", Name: "Zed"}}, resolve: 1,
			merge: func(rows []Tenant) (Tenant, bool) { return Tenant{ID: rows[0].ID, Name: "merged name"}, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewBuilder(0, 0)
			for _, r := range tc.rows {
				if err := b.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			calls := 0
			c := b.Catalog(func(rows []Tenant) (Tenant, bool) {
				calls++
				if tc.merge != nil {
					return tc.merge(rows)
				}
				return firstName(rows)
			})
			if got := c.Tenants(); !slices.Equal(got, tc.want) {
				t.Errorf("tenants = %v, want %v", got, tc.want)
			}
			if calls != tc.resolve {
				t.Errorf("resolve called %d times, want %d", calls, tc.resolve)
			}
			for _, w := range tc.want {
				if got, ok := c.Tenant(w.ID); !ok || got != w {
					t.Errorf("Tenant(%q) = %v, %v, want %v", w.ID, got, ok, w)
				}
			}
		})
	}
}

// TestBuilderStopsAtItsLimit: past what a catalog's offsets reach, Add
// fails and keeps nothing of the row; the rows before it stay whole.
func TestBuilderStopsAtItsLimit(t *testing.T) {
	t.Parallel()
	b := NewBuilder(0, 0)
	b.limit = 11
	for _, r := range []Tenant{{ID: "1", Name: "One"}, {ID: "22", Name: "Two"}} {
		if err := b.Add(r); err != nil {
			t.Fatalf("Add(%v) = %v", r, err)
		}
	}
	if err := b.Add(Tenant{ID: "3", Name: "Thr"}); !errors.Is(err, ErrCatalogFull) {
		t.Fatalf("Add past the limit = %v, want ErrCatalogFull", err)
	}
	if err := b.Add(Tenant{ID: "4", Name: "F"}); err != nil {
		t.Fatalf("Add up to the limit = %v", err)
	}
	if err := b.Add(Tenant{ID: "5", Name: strings.Repeat("n", 1<<16)}); !errors.Is(err, ErrRowTooLong) {
		t.Fatalf("Add of a 64 KiB name = %v, want ErrRowTooLong", err)
	}
	want := []Tenant{{ID: "1", Name: "One"}, {ID: "22", Name: "Two"}, {ID: "4", Name: "F"}}
	if got := b.Catalog(nil).Tenants(); !slices.Equal(got, want) {
		t.Errorf("tenants = %v, want %v", got, want)
	}
}

// TestCatalogLendsItsTextAndDiffCopies: At's strings are the catalog's,
// while Tenants and Diff return strings of their own, which keep no
// catalog alive.
func TestCatalogLendsItsTextAndDiffCopies(t *testing.T) {
	t.Parallel()
	old := NewCatalog(Tenant{ID: "1", Plan: "p", Name: "One"}, Tenant{ID: "2"})
	next := NewCatalog(Tenant{ID: "1", Plan: "p", Name: "Uno"}, Tenant{ID: "3"})
	within := func(c *Catalog, s string) bool {
		p, text := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(c.text)))
		return p >= text && p < text+uintptr(len(c.text))
	}
	if a := old.At(0); !within(old, a.ID) || !within(old, a.Name) {
		t.Error("At copies the catalog's strings")
	}
	for _, s := range old.Tenants() {
		if within(old, s.ID) || s.Name != "" && within(old, s.Name) {
			t.Errorf("Tenants returns %q of the catalog's text", s.ID)
		}
	}
	got := Diff(old, next)
	if want := []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Fatalf("Diff = %v, want %v", got, want)
	}
	for _, id := range got {
		if within(old, id) || within(next, id) {
			t.Errorf("Diff returns %q of a catalog's text", id)
		}
	}
}

// TestBuilderReusesItsBase: rows added as the base read them, in its order,
// give a catalog on the base's table; any other rows give a table of their
// own with what they say, and the base stays as it was.
func TestBuilderReusesItsBase(t *testing.T) {
	t.Parallel()
	read := []Tenant{{ID: "b", Plan: "1", Name: "Bee"}, {ID: "a"}, {ID: "c", Plan: "2"}, {ID: "10", Plan: "1"}}
	build := func(base *Catalog, rows []Tenant) *Catalog {
		b := NewBuilder(0, 0)
		if base != nil {
			b.Reuse(base)
		}
		for _, r := range rows {
			if err := b.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		return b.Catalog(func(rows []Tenant) (Tenant, bool) { return rows[0], true })
	}
	with := func(change func(rows []Tenant) []Tenant) []Tenant { return change(slices.Clone(read)) }
	for _, tc := range []struct {
		name  string
		rows  []Tenant
		reuse bool
	}{
		{"the same rows", read, true},
		{"reordered", with(func(r []Tenant) []Tenant { r[0], r[1] = r[1], r[0]; return r }), false},
		{"a name changed", with(func(r []Tenant) []Tenant { r[2].Name = "Cee"; return r }), false},
		{"a plan changed", with(func(r []Tenant) []Tenant { r[3].Plan = "2"; return r }), false},
		{"a row fewer", read[:3], false},
		{"a row more", append(slices.Clone(read), Tenant{ID: "d"}), false},
		{"a row twice", append(slices.Clone(read), read[1]), false},
		{"no rows", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := build(nil, read)
			was := base.Tenants()
			got, want := build(base, tc.rows), build(nil, tc.rows)
			if !slices.Equal(got.Tenants(), want.Tenants()) {
				t.Errorf("tenants = %v, want %v", got.Tenants(), want.Tenants())
			}
			if reused := got.Len() > 0 && sameTable(base, got); reused != tc.reuse {
				t.Errorf("base's table reused: %v, want %v", reused, tc.reuse)
			}
			if !slices.Equal(base.Tenants(), was) {
				t.Errorf("the base changed to %v", base.Tenants())
			}
			// A catalog is a base for the rows it was built from, unless
			// it resolved an id's rows into one.
			if again := build(got, tc.rows); got.Len() == len(tc.rows) && got.Len() > 0 && !sameTable(got, again) {
				t.Error("a catalog is no base for the rows it was built from")
			}
		})
	}
}

// TestDiffOfOneTable: catalogs that share their tenants differ in the
// tenants of the plans whose terms changed.
func TestDiffOfOneTable(t *testing.T) {
	t.Parallel()
	old := NewCatalog(Tenant{ID: "1", Plan: "p"}, Tenant{ID: "2", Plan: "q"}, Tenant{ID: "3", Plan: "p"}, Tenant{ID: "4"})
	old.Plans["p"] = Plan{ID: "p", Name: "P", Limits: Limits{"messages": 10}}
	old.Plans["q"] = Plan{ID: "q", Name: "Q", Limits: Limits{"messages": 20}}
	same := old.Clone()
	if got := Diff(old, same); got != nil {
		t.Errorf("Diff of a clone = %v, want none", got)
	}
	next := old.Clone()
	next.Plans["p"] = Plan{ID: "p", Name: "P", Limits: Limits{"messages": 11}}
	if got, want := Diff(old, next), []string{"1", "3"}; !slices.Equal(got, want) {
		t.Errorf("Diff = %v, want %v", got, want)
	}
	delete(next.Plans, "q")
	if got, want := Diff(old, next), []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("Diff with a plan gone = %v, want %v", got, want)
	}
}
