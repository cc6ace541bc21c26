package mirror

import (
	"bytes"
	"iter"
	"math/bits"
	"slices"
	"strings"
)

// otherKeys is the set of keys of other periods, as a bit per period for
// each tenant, since the same tenants recur across periods.
type otherKeys struct {
	short   map[shortID]uint64 // bit i: a key in periods[i]
	long    map[string]uint64  // ids longer than a shortID
	periods [64]string         // "": a free bit
	counts  [64]int            // keys per bit
	extra   map[[2]string]bool // tenant and period, when 64 bits are taken
	n       int
}

// shortID holds a tenant id inline, zero-padded, which a string key would
// allocate beside the map; ids are printable, so hold no zero byte.
type shortID [16]byte

func toShort(tenant string) (k shortID, ok bool) {
	copy(k[:], tenant)
	return k, len(tenant) <= len(k)
}

func newOtherKeys() otherKeys {
	return otherKeys{short: map[shortID]uint64{}, long: map[string]uint64{}, extra: map[[2]string]bool{}}
}

func (o *otherKeys) Len() int { return o.n + len(o.extra) }

func (o *otherKeys) mask(tenant string) uint64 {
	if k, ok := toShort(tenant); ok {
		return o.short[k]
	}
	return o.long[tenant]
}

func (o *otherKeys) setMask(tenant string, mask uint64) {
	k, short := toShort(tenant)
	switch {
	case short && mask == 0:
		delete(o.short, k)
	case short:
		o.short[k] = mask
	case mask == 0:
		delete(o.long, tenant)
	default: // an assignment replaces the key, so it must not pin a bigger string
		o.long[strings.Clone(tenant)] = mask
	}
}

func (o *otherKeys) Has(tenant, pid string) bool {
	i := slices.Index(o.periods[:], pid)
	return o.extra[[2]string{tenant, pid}] || i >= 0 && o.mask(tenant)&(1<<i) != 0
}

// Set adds or removes a key.
func (o *otherKeys) Set(tenant, pid string, exists bool) {
	k := [2]string{tenant, pid}
	if o.extra[k] {
		if !exists {
			delete(o.extra, k)
		}
		return
	}
	i := slices.Index(o.periods[:], pid)
	if i < 0 && exists {
		if i = slices.Index(o.periods[:], ""); i < 0 {
			o.extra[[2]string{strings.Clone(tenant), strings.Clone(pid)}] = true
			return
		}
		o.periods[i] = strings.Clone(pid)
	}
	mask := o.mask(tenant)
	if i < 0 || (mask&(1<<i) != 0) == exists {
		return
	}
	o.setMask(tenant, mask^1<<i)
	d := 1
	if !exists {
		d = -1
	}
	o.n += d
	if o.counts[i] += d; o.counts[i] == 0 {
		o.periods[i] = ""
	}
}

// All yields every key's tenant and period.
func (o *otherKeys) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		each := func(tenant string, mask uint64) bool {
			for ; mask != 0; mask &= mask - 1 {
				if !yield(tenant, o.periods[bits.TrailingZeros64(mask)]) {
					return false
				}
			}
			return true
		}
		for k, mask := range o.short {
			if !each(string(bytes.TrimRight(k[:], "\x00")), mask) {
				return
			}
		}
		for tenant, mask := range o.long {
			if !each(tenant, mask) {
				return
			}
		}
		for k := range o.extra {
			if !yield(k[0], k[1]) {
				return
			}
		}
	}
}
