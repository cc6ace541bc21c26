package mirror

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestKeySet checks the arena-backed set against a map under add, remove
// and re-add, with hashes that collide (a mask that keeps few bits, or
// none: every key in one probe chain) as well as real ones, and across the
// rebuilds that growth and removals cause.
func TestKeySet(t *testing.T) {
	type op struct {
		add bool
		key string
	}
	keys := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("usage:%d:2026%02d", i, 1+i%12)
		}
		return out
	}
	seq := func(ops ...op) []op { return ops }
	add := func(ks ...string) []op {
		var out []op
		for _, k := range ks {
			out = append(out, op{true, k})
		}
		return out
	}
	remove := func(ks ...string) []op {
		var out []op
		for _, k := range ks {
			out = append(out, op{false, k})
		}
		return out
	}
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n, space int) []op {
		ks := keys(space)
		out := make([]op, n)
		for i := range out {
			out[i] = op{rng.IntN(3) > 0, ks[rng.IntN(space)]}
		}
		return out
	}
	big := keys(5000)
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"empty", nil},
		{"remove from empty", remove("a")},
		{"add twice counts once", seq(op{true, "a"}, op{true, "a"})},
		{"add, remove, re-add", seq(op{true, "a"}, op{false, "a"}, op{true, "a"}, op{false, "a"}, op{false, "a"}, op{true, "a"})},
		{"empty key and prefixes", add("", "u", "us", "usage", "usage:", "", "us")},
		{"long key", add(strings.Repeat("k", 1000), strings.Repeat("k", 999), strings.Repeat("k", 1000))},
		{"grow", add(big...)},
		{"grow, remove all, re-add", slices.Concat(add(big...), remove(big...), add(big[:100]...))},
		{"remove every other", slices.Concat(add(big...), remove(everyOther(big)...))},
		{"churn", random(20000, 300)},
	} {
		for _, bits := range []int{64, 3, 0} {
			t.Run(fmt.Sprintf("%s/hash bits %d", tc.name, bits), func(t *testing.T) {
				if bits == 0 && len(tc.ops) > 2000 {
					t.Skip("one probe chain: quadratic")
				}
				s := newKeySet()
				if bits < 64 {
					s.hashMask = 1<<bits - 1
				}
				want := map[string]struct{}{}
				for i, o := range tc.ops {
					_, had := want[o.key]
					var changed bool
					if o.add {
						changed = s.Add(o.key)
						want[o.key] = struct{}{}
					} else {
						changed = s.Remove(o.key)
						delete(want, o.key)
					}
					if changed != (o.add != had) {
						t.Fatalf("op %d (add %v %q): changed = %v with the key a member before: %v", i, o.add, o.key, changed, had)
					}
					if s.Len() != len(want) {
						t.Fatalf("op %d (add %v %q): Len = %d, want %d", i, o.add, o.key, s.Len(), len(want))
					}
				}
				for k := range want {
					if !s.Has(k) {
						t.Errorf("member %q missing", k)
					}
				}
				for _, o := range tc.ops {
					if _, ok := want[o.key]; !ok && s.Has(o.key) {
						t.Errorf("removed %q still a member", o.key)
					}
				}
				got := slices.Sorted(s.All())
				if w := slices.Sorted(maps.Keys(want)); !slices.Equal(got, w) {
					t.Errorf("All = %d keys, want %d", len(got), len(w))
				}
			})
		}
	}
}

func everyOther(ks []string) []string {
	var out []string
	for i := 0; i < len(ks); i += 2 {
		out = append(out, ks[i])
	}
	return out
}

// TestKeySetBig: members beyond a 32-bit arena offset are kept exactly
// beside the arena.
func TestKeySetBig(t *testing.T) {
	s := newKeySet()
	s.Add("a")
	s.big = map[string]struct{}{"b": {}} // as if the arena were full
	if !s.Has("b") || s.Add("b") || s.Len() != 2 {
		t.Fatalf("Has(b) %v, Len %d", s.Has("b"), s.Len())
	}
	if got := slices.Sorted(s.All()); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("All = %v", got)
	}
	if !s.Remove("b") || s.Has("b") || s.Len() != 1 {
		t.Errorf("after Remove(b): Has %v, Len %d", s.Has("b"), s.Len())
	}
}

// BenchmarkKeySetAdd and BenchmarkMapAdd: adding 1M keys to a keySet and
// to the map it replaces (the mirror's seed adds every key of another
// period once).
func BenchmarkKeySetAdd(b *testing.B) {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = fmt.Sprintf("usage:%d:202610", i)
	}
	for b.Loop() {
		s := newKeySet()
		for _, k := range keys {
			s.Add(k)
		}
	}
}

func BenchmarkMapAdd(b *testing.B) {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = fmt.Sprintf("usage:%d:202610", i)
	}
	for b.Loop() {
		s := map[string]struct{}{}
		for _, k := range keys {
			s[k] = struct{}{}
		}
	}
}
