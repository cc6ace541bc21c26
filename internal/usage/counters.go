package usage

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Hash is one usage hash as decoded: its fields, sorted by name, and their
// values. It is never modified once built: readers keep hashes across
// reads and hand the same one to every read until the key changes, so that
// identity (==) says a tenant's usage is the very same as last time.
//
// It replaced a map per hash: at a million tenants the maps were the
// largest thing the exporter held (about 250 bytes a tenant against 64
// here; BENCHMARKS.md, "Memory"). A hash has a handful of fields, so a
// lookup walks a short sorted list, and hashes with the same field names
// (nearly all of them) share one list of names.
//
// A field the backend wrote but that could not be read, and a whole usage
// hash that could not be read, are kept rather than dropped: a dropped
// field looks exactly like an absent one, and an absent field is a real 0
// (a tenant that sent no message yet). From a 0 that is not one the join
// would compute a percentage, count the tenant under every threshold and
// project its month, each a wrong number that hides the tenant from the
// near-limit list and alerts. They are stored as negative values, which no
// readable field can hold (ParseValue accepts only non-negative integers),
// so that the fact travels with the tenant's usage through every reader and
// cache. Read a Hash with Value, Each and Unreadable.
type Hash struct {
	names *[]string // sorted; shared by hashes with the same fields
	vals  []int64   // vals[i] is the value of (*names)[i]
}

// Counters is a tenant's usage hash as decoded; nil when the tenant has no
// usage key for the period (every method treats nil as an empty hash).
type Counters = *Hash

// wholeHash is the field name of the marker of a hash that could not be
// read at all (a usage key of another type). It cannot be a metric type:
// those are never empty, and it sorts first.
const wholeHash = ""

// unreadableCodes numbers the reasons a field can be unreadable; the
// stored value is the code's negation.
var unreadableCodes = func() map[Reason]int64 {
	m := make(map[Reason]int64, len(Reasons))
	for i, r := range Reasons {
		m[r] = int64(i + 1)
	}
	return m
}()

func reasonOf(v int64) Reason {
	if i := int(-v) - 1; i >= 0 && i < len(Reasons) {
		return Reasons[i]
	}
	return ReasonInvalidValue
}

// smallHash is the most fields a hash is sorted and searched by a plain
// walk, as a usage hash (a handful of fields) always is; a larger one is
// hostile data, up to tens of thousands of fields within
// --redis.max-reply-bytes, and gets n log n.
const smallHash = 12

// field is one field of a hash being built.
type field struct {
	name string
	v    int64
}

// buildHash makes a Hash of fields, which hold distinct names. It sorts
// fields in place.
func buildHash(fields []field) *Hash {
	if len(fields) <= smallHash {
		// Insertion sort: this runs for every hash of a full read,
		// without allocating.
		for i := 1; i < len(fields); i++ {
			for j := i; j > 0 && fields[j].name < fields[j-1].name; j-- {
				fields[j], fields[j-1] = fields[j-1], fields[j]
			}
		}
	} else {
		slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	}
	h := &Hash{names: shapes.intern(fields), vals: make([]int64, len(fields))}
	for i, f := range fields {
		h.vals[i] = f.v
	}
	return h
}

// CountersOf builds the Counters holding fields (negative values are
// unreadable markers, as DecodeHash stores them): for tests and for data
// made in process (the demo).
func CountersOf(fields map[string]int64) Counters {
	fs := make([]field, 0, len(fields))
	for name, v := range fields {
		fs = append(fs, field{name, v})
	}
	return buildHash(fs)
}

// UnreadableValue is the value CountersOf takes for a field that was
// present but could not be read, and why.
func UnreadableValue(reason Reason) int64 { return -unreadableCodes[reason] }

// UnreadableHash returns the counters of a usage hash that exists but
// could not be read at all (ReasonWrongType): every metric type of the
// tenant is unreadable.
func UnreadableHash(reason Reason) Counters {
	return buildHash([]field{{wholeHash, UnreadableValue(reason)}})
}

// Len returns the number of fields, unreadable ones included (a whole
// unreadable hash has one).
func (h *Hash) Len() int {
	if h == nil {
		return 0
	}
	return len(h.vals)
}

// index returns where name is in h, or -1.
func (h *Hash) index(name string) int {
	if h == nil {
		return -1
	}
	names := *h.names
	if len(names) > smallHash {
		if i, found := slices.BinarySearch(names, name); found {
			return i
		}
		return -1
	}
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// Value returns the value of a metric type: 0 when the field is absent
// (nothing counted yet), and ok false when it is unreadable.
func (h *Hash) Value(metricType string) (v int64, ok bool) {
	v, _, ok = h.lookup(metricType)
	return v, ok
}

// Unreadable reports whether metricType was present but could not be
// read, and why: the field itself, or the whole hash.
func (h *Hash) Unreadable(metricType string) (Reason, bool) {
	_, reason, ok := h.lookup(metricType)
	return reason, !ok
}

// lookup is Value and Unreadable in one walk. A whole unreadable hash
// holds its marker only.
func (h *Hash) lookup(metricType string) (v int64, reason Reason, ok bool) {
	i := h.index(metricType)
	switch {
	case i >= 0:
		v = h.vals[i]
	case h.Len() == 1 && (*h.names)[0] == wholeHash:
		v = h.vals[0]
	}
	if v < 0 {
		return 0, reasonOf(v), false
	}
	return v, "", true
}

// Each calls f for every readable field, in name order.
func (h *Hash) Each(f func(metricType string, v int64)) {
	for i := range h.Len() {
		if v := h.vals[i]; v >= 0 {
			f((*h.names)[i], v)
		}
	}
}

// EachUnreadable calls f for every field that was present but could not
// be read, in name order; a whole unreadable hash has no fields.
func (h *Hash) EachUnreadable(f func(metricType string, reason Reason)) {
	for i := range h.Len() {
		if v, name := h.vals[i], (*h.names)[i]; v < 0 && name != wholeHash {
			f(name, reasonOf(v))
		}
	}
}

// HashUnreadable reports whether the whole hash could not be read, and why.
func (h *Hash) HashUnreadable() (Reason, bool) {
	if i := h.index(wholeHash); i >= 0 && h.vals[i] < 0 {
		return reasonOf(h.vals[i]), true
	}
	return "", false
}

// eachField calls f for every field, readable or not, the whole-hash
// marker included.
func (h *Hash) eachField(f func(name string, v int64)) {
	for i := range h.Len() {
		f((*h.names)[i], h.vals[i])
	}
}

// Equal reports whether h and o hold the same fields and values.
func (h *Hash) Equal(o *Hash) bool {
	if h.Len() != o.Len() {
		return false
	}
	for i := range h.Len() {
		if (*h.names)[i] != (*o.names)[i] || h.vals[i] != o.vals[i] {
			return false
		}
	}
	return true
}

// Map returns the fields as a map, unreadable markers included: for tests
// and messages.
func (h *Hash) Map() map[string]int64 {
	m := make(map[string]int64, h.Len())
	h.eachField(func(name string, v int64) { m[name] = v })
	return m
}

// String shows the fields as a map does, so that a test failure says what
// a hash holds.
func (h *Hash) String() string {
	if h == nil {
		return "<nil>"
	}
	return fmt.Sprint(h.Map())
}

// without returns h less the fields drop selects; h itself when it drops
// none (a Hash is never modified), without allocating.
func (h *Hash) without(drop func(name string, v int64) bool) *Hash {
	var kept []field
	for i := range h.Len() {
		name, v := (*h.names)[i], h.vals[i]
		if drop(name, v) {
			if kept == nil {
				kept = make([]field, 0, h.Len())
				for j := range i {
					kept = append(kept, field{(*h.names)[j], h.vals[j]})
				}
			}
			continue
		}
		if kept != nil {
			kept = append(kept, field{name, v})
		}
	}
	if kept == nil {
		return h
	}
	return buildHash(kept)
}

// shapes interns the lists of field names: a million hashes with the same
// four fields share one list rather than holding four string headers each.
var shapes = &shapeTable{}

// maxShapes bounds the interned lists: hostile data (one unique field per
// tenant) must not grow the table without bound. Past it, a hash holds its
// own list, which costs memory only. (The table is copied on every new
// list, so it is not emptied and refilled: a stream of unique fields would
// cost a copy per hash.)
const maxShapes = 1024

// maxShapeKey bounds the names of a list worth interning, in bytes.
const maxShapeKey = 1024

// shapeTable is read on every hash decoded, from several goroutines, and
// written only when a list of names is seen for the first time: readers
// load an immutable map without a lock, writers replace it under mu.
type shapeTable struct {
	m  atomic.Pointer[map[string]*[]string]
	mu sync.Mutex
}

// intern returns the shared list of the names of fields (sorted).
func (t *shapeTable) intern(fields []field) *[]string {
	var buf [256]byte
	key := buf[:0]
	for _, f := range fields {
		// Each name ends in a NUL, which no field name holds (they are
		// printable), so that no two lists share a key: not even no
		// field and the one field "" of a whole unreadable hash.
		key = append(append(key, f.name...), 0)
	}
	if m := t.m.Load(); m != nil {
		if names, ok := (*m)[string(key)]; ok {
			return names
		}
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = strings.Clone(f.name) // not a slice of a reply buffer
	}
	if len(key) > maxShapeKey {
		return &names
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if shared, ok := (*old)[string(key)]; ok {
			return shared
		}
		if len(*old) >= maxShapes {
			return &names
		}
	}
	next := make(map[string]*[]string, 1)
	if old != nil {
		next = maps.Clone(*old)
	}
	next[string(key)] = &names
	t.m.Store(&next)
	return &names
}
