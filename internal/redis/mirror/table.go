package mirror

import (
	"hash/maphash"
	"iter"
	"slices"
)

// tenantTable maps tenant ids to entries: slices of ids and entries under
// an open-addressing index of 32-bit slots, since a Go map keeps a whole
// id and entry in every slot, free or not.
type tenantTable struct {
	seed    maphash.Seed // random: keys cannot be chosen to collide
	slots   []uint32     // 0: free, else 1 + an index of ids; a power of two long
	ids     []string
	entries []entry
}

// newTenantTable returns an empty table with room for sizeHint tenants.
func newTenantTable(sizeHint int) *tenantTable {
	t := &tenantTable{seed: maphash.MakeSeed(), ids: make([]string, 0, sizeHint), entries: make([]entry, 0, sizeHint)}
	t.resize(sizeHint)
	return t
}

// Len returns the number of tenants.
func (t *tenantTable) Len() int { return len(t.ids) }

// lookup returns the id the table holds for tenant and its entry, zero
// without one.
func (t *tenantTable) lookup(tenant string) (string, entry) {
	if s, found := t.find(tenant); found {
		i := t.slots[s] - 1
		return t.ids[i], t.entries[i]
	}
	return "", entry{}
}

// get returns tenant's entry, zero without one.
func (t *tenantTable) get(tenant string) entry {
	_, e := t.lookup(tenant)
	return e
}

// put sets tenant's entry and returns the id the table holds: tenant when
// it adds the tenant, the id it had before when it replaces an entry.
func (t *tenantTable) put(tenant string, e entry) string {
	s, found := t.find(tenant)
	if found {
		i := t.slots[s] - 1
		t.entries[i] = e
		return t.ids[i]
	}
	t.ids, t.entries = append(t.ids, tenant), append(t.entries, e)
	t.slots[s] = uint32(len(t.ids))
	if len(t.ids) > len(t.slots)/4*3 {
		t.resize(len(t.ids))
	}
	return tenant
}

// remove drops tenant, moving the last tenant into its place.
func (t *tenantTable) remove(tenant string) {
	s, found := t.find(tenant)
	if !found {
		return
	}
	i, last := int(t.slots[s]-1), len(t.ids)-1
	if i != last {
		ls, _ := t.find(t.ids[last])
		t.slots[ls] = uint32(i + 1)
		t.ids[i], t.entries[i] = t.ids[last], t.entries[last]
	}
	t.ids[last], t.entries[last] = "", entry{}
	t.ids, t.entries = t.ids[:last], t.entries[:last]
	t.slots[s] = 0
	mask := len(t.slots) - 1
	for free, next := s, (s+1)&mask; t.slots[next] != 0; next = (next + 1) & mask {
		home := t.home(t.ids[t.slots[next]-1])
		// next moves back when free lies on its path from its home.
		if (next-home)&mask >= (next-free)&mask {
			t.slots[free], t.slots[next] = t.slots[next], 0
			free = next
		}
	}
	if len(t.slots) > 8 && len(t.ids) < len(t.slots)/8 {
		t.resize(len(t.ids))
	}
}

// find returns tenant's slot, or the free slot where it would go.
func (t *tenantTable) find(tenant string) (slot int, found bool) {
	mask := len(t.slots) - 1
	for s := t.home(tenant); ; s = (s + 1) & mask {
		switch v := t.slots[s]; {
		case v == 0:
			return s, false
		case t.ids[v-1] == tenant:
			return s, true
		}
	}
}

func (t *tenantTable) home(tenant string) int {
	return int(maphash.String(t.seed, tenant) & uint64(len(t.slots)-1))
}

// resize gives n tenants an index at most half full.
func (t *tenantTable) resize(n int) {
	size := 8
	for size < 2*n {
		size *= 2
	}
	t.slots = make([]uint32, size)
	for i, id := range t.ids {
		s, _ := t.find(id)
		t.slots[s] = uint32(i + 1)
	}
}

// all yields every tenant and its entry, in no order.
func (t *tenantTable) all() iter.Seq2[string, entry] {
	return func(yield func(string, entry) bool) {
		for i, id := range t.ids {
			if !yield(id, t.entries[i]) {
				return
			}
		}
	}
}

// clone returns a table of its own with the same tenants.
func (t *tenantTable) clone() *tenantTable {
	return &tenantTable{seed: t.seed, slots: slices.Clone(t.slots), ids: slices.Clone(t.ids), entries: slices.Clone(t.entries)}
}
