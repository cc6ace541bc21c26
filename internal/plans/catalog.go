package plans

import (
	"bytes"
	"errors"
	"iter"
	"maps"
	"math"
	"slices"
	"strings"
)

// Catalog is one read of a source; plan "" means the defaults. Its tenants
// are one table sorted by id, the only copy a catalog keeps of them.
type Catalog struct {
	Plans   map[string]Plan
	Invalid map[string]int
	rows    []row
	planIDs []string // what row.plan indexes
	text    string   // each row's id and then its name, row after row
}

// row is a tenant: its id runs in text from the row before's nameEnd to
// idEnd, and its name from idEnd to nameEnd.
type row struct {
	idEnd, nameEnd uint32
	plan           uint32
}

// NewCatalog returns a Catalog of tenants sorted by id, keeping the first
// row of an id and dropping rows past what a catalog holds.
func NewCatalog(tenants ...Tenant) *Catalog {
	b := NewBuilder(len(tenants), 0)
	for _, t := range tenants {
		if b.Add(t) != nil {
			break
		}
	}
	return b.Catalog(func(rows []Tenant) (Tenant, bool) { return rows[0], true })
}

// Len returns the number of tenants.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.rows)
}

func (c *Catalog) start(i int) uint32 {
	if i == 0 {
		return 0
	}
	return c.rows[i-1].nameEnd
}

// id returns the i-th id, which shares the catalog's memory.
func (c *Catalog) id(i int) string { return c.text[c.start(i):c.rows[i].idEnd] }

// At returns the i-th tenant by id. Its strings share the catalog's
// memory: a copy keeps an id past the catalog without keeping all of it.
func (c *Catalog) At(i int) Tenant {
	r := c.rows[i]
	return Tenant{ID: c.id(i), Plan: c.planIDs[r.plan], Name: c.text[r.idEnd:r.nameEnd]}
}

// All yields the tenants sorted by id, as At does.
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
	out := make([]Tenant, 0, c.Len())
	for t := range c.All() {
		out = append(out, Tenant{ID: strings.Clone(t.ID), Plan: t.Plan, Name: strings.Clone(t.Name)})
	}
	return out
}

// Tenant returns tenant id's row, as At does.
func (c *Catalog) Tenant(id string) (Tenant, bool) {
	i, ok := sortSearch(c.Len(), func(i int) int { return strings.Compare(c.id(i), id) })
	if !ok {
		return Tenant{}, false
	}
	return c.At(i), true
}

// sortSearch returns where cmp, increasing over 0..n-1, is or would be 0.
func sortSearch(n int, cmp func(i int) int) (int, bool) {
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cmp(mid) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < n && cmp(lo) == 0
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
	c.rows, c.planIDs, c.text = next.rows, next.planIDs, next.text
}

// Clone returns a copy whose plans and counts are its own; the tenants'
// table, which nobody modifies, is shared.
func (c *Catalog) Clone() *Catalog {
	out := &Catalog{Plans: make(map[string]Plan, len(c.Plans)), Invalid: maps.Clone(c.Invalid),
		rows: c.rows, planIDs: c.planIDs, text: c.text}
	if out.Invalid == nil {
		out.Invalid = map[string]int{}
	}
	for id, p := range c.Plans {
		p.Limits = maps.Clone(p.Limits)
		p.Unreadable = maps.Clone(p.Unreadable)
		out.Plans[id] = p
	}
	return out
}

// ErrCatalogFull is Builder.Add's error once the ids and names added would
// pass what a catalog's 32-bit offsets reach.
var ErrCatalogFull = errors.New("plans: the tenants' ids and names pass 4 GiB")

// Builder packs tenants' rows as a source reads them, so that a load holds
// two small numbers per row and the bytes of its strings, not the strings.
type Builder struct {
	limit     uint64 // of len(text)
	text      []byte
	rows      []added // in the order added
	planIndex map[string]uint32
	planIDs   []string
}

// added is a row added: its id in text from start to idEnd, its name
// from idEnd to nameEnd.
type added struct {
	start, idEnd, nameEnd, plan uint32
}

// NewBuilder returns a Builder with room for rows tenants and size bytes
// of their ids and names.
func NewBuilder(rows, size int) *Builder {
	return &Builder{limit: math.MaxUint32, text: make([]byte, 0, size), rows: make([]added, 0, rows), planIndex: map[string]uint32{}}
}

// Add adds a tenant's row, or fails with ErrCatalogFull.
func (b *Builder) Add(t Tenant) error {
	if uint64(len(b.text))+uint64(len(t.ID))+uint64(len(t.Name)) > b.limit {
		return ErrCatalogFull
	}
	start := uint32(len(b.text))
	b.text = append(append(b.text, t.ID...), t.Name...)
	b.rows = append(b.rows, added{start: start, idEnd: start + uint32(len(t.ID)), nameEnd: uint32(len(b.text)), plan: b.plan(t.Plan)})
	return nil
}

// Size returns the bytes of the ids and names added.
func (b *Builder) Size() int { return len(b.text) }

// plan returns plan id's index in planIDs.
func (b *Builder) plan(id string) uint32 {
	p, ok := b.planIndex[id]
	if !ok {
		p = uint32(len(b.planIDs))
		b.planIndex[id] = p
		b.planIDs = append(b.planIDs, strings.Clone(id))
	}
	return p
}

// Catalog returns the tenants added, sorted by id, with no plans. Of rows
// sharing an id, in the order added, resolve returns the row to keep, or
// false to keep none. The Builder is spent.
func (b *Builder) Catalog(resolve func(rows []Tenant) (Tenant, bool)) *Catalog {
	id := func(a added) []byte { return b.text[a.start:a.idEnd] }
	slices.SortStableFunc(b.rows, func(x, y added) int { return bytes.Compare(id(x), id(y)) })
	kept := b.rows[:0]
	resolved := map[int]Tenant{} // by index in kept
	size := 0
	for i := 0; i < len(b.rows); {
		j := i + 1
		for j < len(b.rows) && bytes.Equal(id(b.rows[j]), id(b.rows[i])) {
			j++
		}
		if j == i+1 {
			kept, size = append(kept, b.rows[i]), size+int(b.rows[i].nameEnd-b.rows[i].start)
			i = j
			continue
		}
		group := make([]Tenant, 0, j-i)
		for _, a := range b.rows[i:j] {
			group = append(group, Tenant{ID: string(id(a)), Plan: b.planIDs[a.plan], Name: string(b.text[a.idEnd:a.nameEnd])})
		}
		if t, ok := resolve(group); ok && uint64(size)+uint64(len(t.ID)+len(t.Name)) <= b.limit {
			resolved[len(kept)] = t
			kept, size = append(kept, added{}), size+len(t.ID)+len(t.Name)
		}
		i = j
	}
	var text strings.Builder
	text.Grow(size)
	c := &Catalog{Plans: map[string]Plan{}, Invalid: map[string]int{}, rows: make([]row, len(kept))}
	for i, a := range kept {
		if t, ok := resolved[i]; ok {
			text.WriteString(t.ID)
			a.idEnd, a.plan = uint32(text.Len()), b.plan(t.Plan)
			text.WriteString(t.Name)
		} else {
			text.Write(b.text[a.start:a.nameEnd])
			a.idEnd = uint32(text.Len()) - (a.nameEnd - a.idEnd)
		}
		c.rows[i] = row{idEnd: a.idEnd, nameEnd: uint32(text.Len()), plan: a.plan}
	}
	c.text, c.planIDs = text.String(), b.planIDs
	*b = Builder{}
	return c
}
