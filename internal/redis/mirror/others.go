package mirror

import (
	"iter"
	"math/bits"
	"slices"
	"strings"
)

// periodBits numbers the other periods for the masks of a state's
// entries, since the same tenants recur across periods.
type periodBits struct {
	periods [64]string         // "": a free bit
	counts  [64]int            // keys per bit
	extra   map[[2]string]bool // tenant and period, when 64 bits are taken
	n       int                // keys in the masks
}

func (o *periodBits) len() int { return o.n + len(o.extra) }

func (o *periodBits) has(mask uint64, tenant, pid string) bool {
	i := slices.Index(o.periods[:], pid)
	return o.extra[[2]string{tenant, pid}] || i >= 0 && mask&(1<<i) != 0
}

// set returns tenant's mask with the key of pid added or removed.
func (o *periodBits) set(mask uint64, tenant, pid string, exists bool) uint64 {
	k := [2]string{tenant, pid}
	if o.extra[k] {
		if !exists {
			delete(o.extra, k)
		}
		return mask
	}
	i := slices.Index(o.periods[:], pid)
	if i < 0 && exists {
		if i = slices.Index(o.periods[:], ""); i < 0 {
			if o.extra == nil {
				o.extra = map[[2]string]bool{}
			}
			o.extra[[2]string{strings.Clone(tenant), strings.Clone(pid)}] = true
			return mask
		}
		o.periods[i] = strings.Clone(pid)
	}
	if i < 0 || (mask&(1<<i) != 0) == exists {
		return mask
	}
	d := 1
	if !exists {
		d = -1
	}
	o.n += d
	if o.counts[i] += d; o.counts[i] == 0 {
		o.periods[i] = ""
	}
	return mask ^ 1<<i
}

// each yields the periods of tenant's mask.
func (o *periodBits) each(tenant string, mask uint64, yield func(string, string) bool) bool {
	for ; mask != 0; mask &= mask - 1 {
		if !yield(tenant, o.periods[bits.TrailingZeros64(mask)]) {
			return false
		}
	}
	return true
}

// otherKeys yields every key of another period as its tenant and period.
func (st *state) otherKeys() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for tenant, e := range st.tenants.all() {
			if !st.others.each(tenant, e.others, yield) {
				return
			}
		}
		for k := range st.others.extra {
			if !yield(k[0], k[1]) {
				return
			}
		}
	}
}

func (st *state) hasOther(tenant, pid string) bool {
	return st.others.has(st.tenants.get(tenant).others, tenant, pid)
}

// setOtherKey records whether tenant has a key in pid, another period.
func (st *state) setOtherKey(tenant, pid string, exists bool) {
	e := st.tenants.get(tenant)
	if mask := st.others.set(e.others, tenant, pid, exists); mask != e.others {
		st.store(tenant, e, entry{counters: e.counters, others: mask})
	}
}
