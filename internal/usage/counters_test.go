package usage

import (
	"fmt"
	"testing"
)

func TestHashFields(t *testing.T) {
	invalid := UnreadableValue(ReasonInvalidValue)
	cases := []struct {
		name       string
		fields     map[string]int64
		wantLen    int
		readable   map[string]int64
		unreadable []string
	}{
		{"empty", map[string]int64{}, 0, map[string]int64{}, nil},
		{"sorted by name", map[string]int64{"users": 3, "messages": 5, "a": 0}, 3, map[string]int64{"a": 0, "messages": 5, "users": 3}, nil},
		{"one unreadable", map[string]int64{"users": invalid, "messages": 5}, 2, map[string]int64{"messages": 5}, []string{"users"}},
		{"past the inline values", map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": invalid, "f": 6}, 6,
			map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "f": 6}, []string{"e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := CountersOf(tc.fields)
			if h.Len() != tc.wantLen {
				t.Errorf("Len = %d, want %d", h.Len(), tc.wantLen)
			}
			readable := map[string]int64{}
			var order []string
			h.Each(func(mt string, v int64) { readable[mt] = v; order = append(order, mt) })
			if fmt.Sprint(readable) != fmt.Sprint(tc.readable) {
				t.Errorf("Each = %v, want %v", readable, tc.readable)
			}
			for i := 1; i < len(order); i++ {
				if order[i-1] >= order[i] {
					t.Errorf("Each out of name order: %v", order)
				}
			}
			var unreadable []string
			h.EachUnreadable(func(mt string, _ Reason) { unreadable = append(unreadable, mt) })
			if fmt.Sprint(unreadable) != fmt.Sprint(tc.unreadable) {
				t.Errorf("EachUnreadable = %v, want %v", unreadable, tc.unreadable)
			}
			if !h.Equal(CountersOf(h.Map())) {
				t.Errorf("%v differs from a hash of its own Map", h)
			}
		})
	}
}

// TestUnreadableHashIsNotEmpty: the marker of a whole unreadable hash is a
// field named "", which must not be taken for a hash without fields
// whichever is made first.
func TestUnreadableHashIsNotEmpty(t *testing.T) {
	for _, first := range []string{"empty", "unreadable"} {
		freshShapes(t)
		if first == "empty" {
			CountersOf(nil)
		}
		whole, empty := UnreadableHash(ReasonWrongType), CountersOf(nil)
		if _, ok := whole.HashUnreadable(); !ok || empty.Len() != 0 {
			t.Errorf("%s first: unreadable hash %v, empty hash of %d fields", first, whole, empty.Len())
		}
	}
}

func TestNilHashIsEmpty(t *testing.T) {
	var h Counters
	if v, ok := h.Value("messages"); !ok || v != 0 {
		t.Errorf("Value = %d, %v; want 0, true", v, ok)
	}
	if _, ok := h.HashUnreadable(); ok {
		t.Error("nil hash is unreadable")
	}
	h.Each(func(mt string, _ int64) { t.Errorf("nil hash has %q", mt) })
	if h.Len() != 0 || !h.Equal(CountersOf(nil)) || h.String() != "<nil>" {
		t.Errorf("nil hash: Len %d, String %s", h.Len(), h)
	}
}

func TestHashEqual(t *testing.T) {
	a := map[string]int64{"messages": 1, "users": 2}
	wide := map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}
	cases := []struct {
		name string
		a, b map[string]int64
		want bool
	}{
		{"same", nil, map[string]int64{"users": 2, "messages": 1}, true},
		{"wide, same", wide, map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}, true},
		{"wide, other value past the inline ones", wide, map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 7}, false},
		{"wide, other inline value", wide, map[string]int64{"a": 0, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}, false},
		{"other value", nil, map[string]int64{"messages": 1, "users": 3}, false},
		{"other field", nil, map[string]int64{"messages": 1, "storage": 2}, false},
		{"fewer fields", nil, map[string]int64{"messages": 1}, false},
		{"unreadable", nil, map[string]int64{"messages": 1, "users": UnreadableValue(ReasonInvalidValue)}, false},
	}
	for _, tc := range cases {
		if tc.a == nil {
			tc.a = a
		}
		if got := CountersOf(tc.a).Equal(CountersOf(tc.b)); got != tc.want {
			t.Errorf("%s: Equal = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHashesShareTheirNames: hashes with the same fields, in whatever
// order the reply gave them, hold one list of names (what keeps a hash
// small), and past the bound on shared lists a hash still reads right.
func TestHashesShareTheirNames(t *testing.T) {
	freshShapes(t) // whatever other tests left in the table
	a := DecodeHash(pairsOf("messages", "1", "users", "2"), map[Reason]int{})
	b := DecodeHash(pairsOf("users", "5", "messages", "7"), map[Reason]int{})
	if a.names != b.names {
		t.Error("two hashes with the same fields hold two lists of names")
	}
	if v, _ := b.Value("messages"); v != 7 {
		t.Errorf("b's messages = %d, want 7", v)
	}
	for i := range maxShapes + 10 {
		h := DecodeHash(pairsOf(fmt.Sprintf("unique%d", i), "1"), map[Reason]int{})
		if v, ok := h.Value(fmt.Sprintf("unique%d", i)); !ok || v != 1 {
			t.Fatalf("hash %d: %v", i, h)
		}
	}
	if n := len(*shapes.m.Load()); n > maxShapes {
		t.Errorf("%d shared lists of names, want at most %d", n, maxShapes)
	}
}

// TestWithoutKeepsTheHash: removing nothing returns the hash itself, so
// that the identity a reader's unchanged hashes keep is not lost.
func TestWithoutKeepsTheHash(t *testing.T) {
	h := CountersOf(map[string]int64{"messages": 1, "x": 2})
	if got := h.without(func(string, int64) bool { return false }); got != h {
		t.Error("a hash with nothing removed was copied")
	}
	got := h.without(func(name string, _ int64) bool { return name == "x" })
	if want := CountersOf(map[string]int64{"messages": 1}); !got.Equal(want) {
		t.Errorf("without x = %v, want %v", got, want)
	}
	if v, _ := h.Value("x"); v != 2 {
		t.Error("without modified the hash")
	}
}

func pairsOf(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, v := range s {
		out[i] = []byte(v)
	}
	return out
}

// TestWideHash: a hash of many fields (hostile data, up to what
// --redis.max-reply-bytes lets through) is decoded in order and whole.
func TestWideHash(t *testing.T) {
	const n = 50000
	var pairs []string
	for i := n - 1; i >= 0; i-- { // reverse order: the worst case of an insertion sort
		pairs = append(pairs, fmt.Sprintf("f%06d", i), fmt.Sprint(i))
	}
	h := DecodeHash(pairsOf(pairs...), map[Reason]int{})
	if h.Len() != n {
		t.Fatalf("%d fields, want %d", h.Len(), n)
	}
	prev := ""
	h.Each(func(mt string, _ int64) {
		if mt <= prev {
			t.Fatalf("%q after %q: not in name order", mt, prev)
		}
		prev = mt
	})
	if v, ok := h.Value("f012345"); !ok || v != 12345 {
		t.Errorf("f012345 = %d, %v", v, ok)
	}
}

// freshShapes gives the test an empty table of shared name lists, and
// puts the package's back when it ends.
func freshShapes(t *testing.T) {
	old := shapes
	shapes = &shapeTable{}
	t.Cleanup(func() { shapes = old })
}
