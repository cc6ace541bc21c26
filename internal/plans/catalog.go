package plans

import (
	"cmp"
	"errors"
	"iter"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
)

// Catalog is one read of a source; plan "" means the defaults. Its tenants
// are one table sorted by id, the only copy a catalog keeps of them.
type Catalog struct {
	Plans   map[string]Plan
	Invalid map[string]int
	rows    []row
	planIDs []string // what row.plan indexes
	text    string   // the rows' ids and names, in the order read
	order   []uint32 // the rows in the order read
}

// row is a tenant: its id at start in text, then its name.
type row struct {
	start, plan    uint32
	idLen, nameLen uint16
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

// id returns the i-th id, which shares the catalog's memory.
func (c *Catalog) id(i int) string { return c.rows[i].id(c.text) }

func (r row) id(text string) string { return text[r.start : r.start+uint32(r.idLen)] }

func (r row) name(text string) string {
	end := r.start + uint32(r.idLen)
	return text[end : end+uint32(r.nameLen)]
}

// At returns the i-th tenant by id; its strings share the catalog's memory.
func (c *Catalog) At(i int) Tenant {
	r := c.rows[i]
	return Tenant{ID: r.id(c.text), Plan: c.planIDs[r.plan], Name: r.name(c.text)}
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
	i, ok := sort.Find(c.Len(), func(i int) int { return strings.Compare(id, c.id(i)) })
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
	c.rows, c.planIDs, c.text, c.order = next.rows, next.planIDs, next.text, next.order
}

// Clone returns a copy whose plans and counts are its own; the tenants'
// table, which nobody modifies, is shared.
func (c *Catalog) Clone() *Catalog {
	out := &Catalog{Plans: make(map[string]Plan, len(c.Plans)), Invalid: maps.Clone(c.Invalid),
		rows: c.rows, planIDs: c.planIDs, text: c.text, order: c.order}
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

// Builder.Add's errors: a catalog reaches its text with 32-bit offsets
// and its ids and names with 16-bit lengths.
var (
	ErrCatalogFull = errors.New("plans: the tenants' ids and names pass 4 GiB")
	ErrRowTooLong  = errors.New("plans: a tenant id or name passes 64 KiB")
)

// Builder packs tenants' rows as a source reads them, into the catalog's
// own rows and text.
type Builder struct {
	limit     uint64 // of text's length
	text      strings.Builder
	rows      []row // in the order added until Catalog
	planIndex map[string]uint32
	planIDs   []string
	base      *Catalog // while every row added is its next in the order read
	matched   int      // of base's rows
	roomRows  int      // made at the first row kept
	roomSize  int
}

// NewBuilder returns a Builder with room for rows tenants and size bytes
// of their ids and names.
func NewBuilder(rows, size int) *Builder {
	return &Builder{limit: math.MaxUint32, planIndex: map[string]uint32{}, roomRows: rows, roomSize: size}
}

// Reuse makes the Builder return base's table, not a copy, when the rows
// added are base's in the order base read them; base is never modified.
func (b *Builder) Reuse(base *Catalog) {
	if base.Len() > 0 && len(b.rows) == 0 {
		b.base = base
	}
}

// Add adds a tenant's row, or fails with ErrCatalogFull or ErrRowTooLong.
func (b *Builder) Add(t Tenant) error {
	if b.base != nil {
		if b.matched < len(b.base.order) && b.base.rowIs(b.base.order[b.matched], t) {
			b.matched++
			return nil
		}
		b.diverge()
	}
	switch {
	case len(t.ID) > math.MaxUint16 || len(t.Name) > math.MaxUint16:
		return ErrRowTooLong
	case uint64(b.text.Len())+uint64(len(t.ID))+uint64(len(t.Name)) > b.limit:
		return ErrCatalogFull
	}
	if b.rows == nil {
		b.rows = make([]row, 0, max(b.roomRows, 1))
		b.text.Grow(b.roomSize)
	}
	r := row{start: uint32(b.text.Len()), plan: b.plan(t.Plan), idLen: uint16(len(t.ID)), nameLen: uint16(len(t.Name))}
	b.text.WriteString(t.ID)
	b.text.WriteString(t.Name)
	b.rows = append(b.rows, r)
	return nil
}

// rowIs reports whether row i is t.
func (c *Catalog) rowIs(i uint32, t Tenant) bool {
	r := c.rows[i]
	return r.id(c.text) == t.ID && r.name(c.text) == t.Name && c.planIDs[r.plan] == t.Plan
}

// diverge adds the base's rows matched so far, which stops reusing it.
func (b *Builder) diverge() {
	base, n := b.base, b.matched
	b.base, b.matched = nil, 0
	for _, i := range base.order[:n] {
		_ = b.Add(base.At(int(i))) // it fitted in base
	}
}

// Size returns the bytes of the ids and names added.
func (b *Builder) Size() int {
	if b.base != nil {
		return len(b.base.text)
	}
	return b.text.Len()
}

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
	if base := b.base; base != nil && b.matched == len(base.order) {
		*b = Builder{}
		return &Catalog{Plans: map[string]Plan{}, Invalid: map[string]int{}, rows: base.rows, planIDs: base.planIDs,
			text: base.text, order: base.order}
	}
	if b.base != nil {
		b.diverge()
	}
	text := b.text.String()
	slices.SortStableFunc(b.rows, func(x, y row) int { return strings.Compare(x.id(text), y.id(text)) })
	kept := b.rows[:0]
	for i := 0; i < len(b.rows); {
		j := i + 1
		for j < len(b.rows) && b.rows[j].id(text) == b.rows[i].id(text) {
			j++
		}
		if j == i+1 {
			kept = append(kept, b.rows[i])
			i = j
			continue
		}
		group := make([]Tenant, 0, j-i)
		for _, r := range b.rows[i:j] {
			group = append(group, Tenant{ID: r.id(text), Plan: b.planIDs[r.plan], Name: r.name(text)})
		}
		// Add puts the row kept last, past every row read; it moves into place.
		if t, ok := resolve(group); ok && b.Add(t) == nil {
			kept = append(kept, b.rows[len(b.rows)-1])
			b.rows = b.rows[:len(b.rows)-1]
		}
		i = j
	}
	// A catalog is kept long: the room a load without a size hint grew is not.
	text = b.text.String()
	if b.text.Cap() > len(text)+len(text)/8 {
		text = strings.Clone(text)
	}
	if cap(kept) > len(kept)+len(kept)/8 {
		kept = slices.Clone(kept)
	}
	c := &Catalog{Plans: map[string]Plan{}, Invalid: map[string]int{}, rows: kept, planIDs: b.planIDs, text: text,
		order: make([]uint32, len(kept))}
	for i := range c.order {
		c.order[i] = uint32(i)
	}
	slices.SortFunc(c.order, func(x, y uint32) int { return cmp.Compare(kept[x].start, kept[y].start) })
	*b = Builder{}
	return c
}

// sameTable reports whether both catalogs share one table of tenants.
func sameTable(a, b *Catalog) bool {
	return len(a.rows) == len(b.rows) && len(a.rows) > 0 && &a.rows[0] == &b.rows[0] && a.text == b.text
}
