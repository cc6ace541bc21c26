package usage

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Hash is an immutable usage hash; unreadable values stay negative, not 0.
// The usual fields' values are inline: one allocation.
type Hash struct {
	names *[]string // sorted, interned
	vals  [inlineVals]int64
	more  *[]int64 // the values past inlineVals
}

const inlineVals = 4

func (h *Hash) val(i int) int64 {
	if i < inlineVals {
		return h.vals[i]
	}
	return (*h.more)[i-inlineVals]
}

// Counters is a Hash; nil is empty.
type Counters = *Hash

// wholeHash marks an unreadable hash.
const wholeHash = ""

func reasonOf(v int64) Reason {
	if i := int(-v) - 1; i >= 0 && i < len(Reasons) {
		return Reasons[i]
	}
	return ReasonInvalidValue
}

const smallHash = 12

type field struct {
	name string
	v    int64
}

func buildHash(fields []field) *Hash {
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	h := &Hash{names: shapes.intern(fields)}
	if len(fields) > inlineVals {
		more := make([]int64, len(fields)-inlineVals)
		h.more = &more
	}
	for i, f := range fields {
		if i < inlineVals {
			h.vals[i] = f.v
		} else {
			(*h.more)[i-inlineVals] = f.v
		}
	}
	return h
}

// CountersOf builds Counters.
func CountersOf(fields map[string]int64) Counters {
	fs := make([]field, 0, len(fields))
	for name, v := range fields {
		fs = append(fs, field{name, v})
	}
	return buildHash(fs)
}

// UnreadableValue marks a field unreadable for reason.
func UnreadableValue(reason Reason) int64 { return -int64(slices.Index(Reasons, reason) + 1) }

// UnreadableHash returns an unreadable hash.
func UnreadableHash(reason Reason) Counters {
	return buildHash([]field{{wholeHash, UnreadableValue(reason)}})
}

// Len returns the number of fields.
func (h *Hash) Len() int {
	if h == nil {
		return 0
	}
	return len(*h.names)
}

func (h *Hash) index(name string) int {
	if h == nil {
		return -1
	}
	if names := *h.names; len(names) <= smallHash {
		return slices.Index(names, name)
	} else if i, found := slices.BinarySearch(names, name); found {
		return i
	}
	return -1
}

// Value returns a field's value, 0 if absent, !ok if unreadable.
func (h *Hash) Value(metricType string) (v int64, ok bool) {
	v, _, ok = h.lookup(metricType)
	return v, ok
}

// Unreadable says why metricType is unreadable.
func (h *Hash) Unreadable(metricType string) (Reason, bool) {
	_, reason, ok := h.lookup(metricType)
	return reason, !ok
}

func (h *Hash) lookup(metricType string) (v int64, reason Reason, ok bool) {
	i := h.index(metricType)
	switch {
	case i >= 0:
		v = h.val(i)
	case h.Len() == 1 && (*h.names)[0] == wholeHash:
		v = h.vals[0]
	}
	if v < 0 {
		return 0, reasonOf(v), false
	}
	return v, "", true
}

// Each calls f for readable fields.
func (h *Hash) Each(f func(metricType string, v int64)) {
	for i := range h.Len() {
		if v := h.val(i); v >= 0 {
			f((*h.names)[i], v)
		}
	}
}

// EachUnreadable calls f for unreadable fields.
func (h *Hash) EachUnreadable(f func(metricType string, reason Reason)) {
	for i := range h.Len() {
		if v, name := h.val(i), (*h.names)[i]; v < 0 && name != wholeHash {
			f(name, reasonOf(v))
		}
	}
}

// HashUnreadable says why h is unreadable.
func (h *Hash) HashUnreadable() (Reason, bool) {
	if i := h.index(wholeHash); i >= 0 && h.val(i) < 0 {
		return reasonOf(h.val(i)), true
	}
	return "", false
}

func (h *Hash) eachField(f func(name string, v int64)) {
	for i := range h.Len() {
		f((*h.names)[i], h.val(i))
	}
}

// Equal compares fields and values.
func (h *Hash) Equal(o *Hash) bool {
	if h.Len() == 0 || o.Len() == 0 {
		return h.Len() == o.Len()
	}
	return slices.Equal(*h.names, *o.names) && h.vals == o.vals && (h.more == nil || slices.Equal(*h.more, *o.more))
}

// Map returns the fields with markers.
func (h *Hash) Map() map[string]int64 {
	m := make(map[string]int64, h.Len())
	h.eachField(func(name string, v int64) { m[name] = v })
	return m
}

// String formats h as a map.
func (h *Hash) String() string {
	if h == nil {
		return "<nil>"
	}
	return fmt.Sprint(h.Map())
}

func (h *Hash) without(drop func(name string, v int64) bool) *Hash {
	var buf [smallHash]field
	kept := buf[:0]
	for i := range h.Len() {
		if name, v := (*h.names)[i], h.val(i); !drop(name, v) {
			kept = append(kept, field{name, v})
		}
	}
	if len(kept) == h.Len() {
		return h
	}
	return buildHash(kept)
}

// shapes interns sorted field name lists.
var shapes = &shapeTable{}

const maxShapes, maxShapeKey = 1024, 1024

// shapeTable is copy on write: lock-free reads.
type shapeTable struct {
	m  atomic.Pointer[map[string]*[]string]
	mu sync.Mutex
}

func (t *shapeTable) intern(fields []field) *[]string {
	var buf [256]byte
	key := buf[:0]
	for _, f := range fields {
		key = append(append(key, f.name...), 0)
	}
	if m := t.m.Load(); m != nil {
		if names, ok := (*m)[string(key)]; ok {
			return names
		}
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = strings.Clone(f.name) // not pinning a reply
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
