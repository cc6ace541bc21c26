package usage

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"unsafe"
)

func TestParseValue(t *testing.T) {
	cases := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"4250", 4250, false},
		{"9223372036854775807", 9223372036854775807, false},
		{"9223372036854775808", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1.5", 0, true},
		{"1e3", 0, true},
		{" 1", 0, true},
		{"", 0, true},
		{"abc", 0, true},
	}
	for _, tc := range cases {
		got, err := ParseValue([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseValue(%q) = %d, %v; want %d, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestDecodeHash(t *testing.T) {
	pairs := [][]byte{
		[]byte("messages"), []byte("4250"),
		[]byte("storage"), []byte("-5"),
		[]byte("users"), []byte("3.0"),
		[]byte("whatsappSessions"), []byte("1"),
		[]byte("newThing"), []byte("7"),
		[]byte("bad\nfield"), []byte("1"),
		[]byte(""), []byte("1"),
	}
	skipped := map[Reason]int{}
	got := DecodeHash(pairs, skipped)
	readable := map[string]int64{}
	got.Each(func(mt string, v int64) { readable[mt] = v })
	want := map[string]int64{"messages": 4250, "whatsappSessions": 1, "newThing": 7}
	if !maps.Equal(readable, want) {
		t.Errorf("readable counters = %v, want %v", readable, want)
	}
	// The fields with a bad value are unknown, not absent: neither is 0.
	for _, mt := range []string{"storage", "users"} {
		if r, ok := got.Unreadable(mt); !ok || r != ReasonInvalidValue {
			t.Errorf("Unreadable(%q) = %q, %v; want %q, true", mt, r, ok, ReasonInvalidValue)
		}
		if v, ok := got.Value(mt); ok {
			t.Errorf("Value(%q) = %d, true; want not ok", mt, v)
		}
	}
	unreadable := map[string]Reason{}
	got.EachUnreadable(func(mt string, r Reason) { unreadable[mt] = r })
	if want := map[string]Reason{"storage": ReasonInvalidValue, "users": ReasonInvalidValue}; !maps.Equal(unreadable, want) {
		t.Errorf("EachUnreadable = %v, want %v", unreadable, want)
	}
	// An absent field is a real 0.
	if v, ok := got.Value("absent"); !ok || v != 0 {
		t.Errorf("Value(absent) = %d, %v; want 0, true", v, ok)
	}
	wantSkipped := map[Reason]int{ReasonInvalidValue: 2, ReasonInvalidField: 2}
	if !maps.Equal(skipped, wantSkipped) {
		t.Errorf("skipped = %v, want %v", skipped, wantSkipped)
	}
}

func TestUnreadable(t *testing.T) {
	for _, reason := range Reasons {
		t.Run(string(reason), func(t *testing.T) {
			c := CountersOf(map[string]int64{"messages": 5, "users": UnreadableValue(reason)})
			if r, ok := c.Unreadable("users"); !ok || r != reason {
				t.Errorf("Unreadable(users) = %q, %v; want %q", r, ok, reason)
			}
			if v, ok := c.Value("messages"); !ok || v != 5 {
				t.Errorf("Value(messages) = %d, %v; want 5, true", v, ok)
			}
			if _, ok := c.HashUnreadable(); ok {
				t.Error("one unreadable field made the whole hash unreadable")
			}

			whole := UnreadableHash(reason)
			for _, mt := range []string{"messages", "storage", "anything"} {
				if r, ok := whole.Unreadable(mt); !ok || r != reason {
					t.Errorf("whole hash: Unreadable(%q) = %q, %v; want %q", mt, r, ok, reason)
				}
			}
			if r, ok := whole.HashUnreadable(); !ok || r != reason {
				t.Errorf("HashUnreadable = %q, %v", r, ok)
			}
			whole.Each(func(mt string, v int64) { t.Errorf("whole unreadable hash has a readable %q = %d", mt, v) })
			whole.EachUnreadable(func(mt string, _ Reason) { t.Errorf("whole unreadable hash lists field %q", mt) })
		})
	}
}

func TestCapMetricTypes(t *testing.T) {
	configured := []MetricType{{Name: "messages"}, {Name: "storage"}}
	snapshot := func() *Snapshot {
		s := NewSnapshot("202611")
		s.Tenants = TenantMap{
			"1": CountersOf(map[string]int64{"messages": 1, "apiCalls": 1, "b": 1, "z1": 1}),
			"2": CountersOf(map[string]int64{"messages": 2, "apiCalls": 2, "a": 2, "z2": 2}),
			"3": CountersOf(map[string]int64{"storage": 3, "apiCalls": 3, "a": 3, "b": 3, "z3": 3}),
		}
		return s
	}
	cases := []struct {
		limit   int
		kept    []string // unconfigured types kept
		skipped int
	}{
		{0, []string{"a", "apiCalls", "b", "z1", "z2", "z3"}, 0}, // no cap
		{8, []string{"a", "apiCalls", "b", "z1", "z2", "z3"}, 0}, // room for all
		{3, []string{"apiCalls"}, 7},                             // most tenants first
		{4, []string{"a", "apiCalls"}, 5},                        // a and b tie at 2: name order
		{1, nil, 10},                                             // configured kept even over the cap
		{2, nil, 10},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			s := snapshot()
			kept := s.CapMetricTypes(configured, tc.limit, nil)
			if got := slices.Sorted(maps.Keys(kept)); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %v, want %v", got, tc.kept)
			}
			if s.Skipped[ReasonMetricTypeLimit] != tc.skipped {
				t.Errorf("skipped %d fields, want %d", s.Skipped[ReasonMetricTypeLimit], tc.skipped)
			}
			types := map[string]bool{}
			for _, c := range s.Tenants.All() {
				for f := range c.Map() {
					types[f] = true
				}
			}
			if tc.limit > 0 && len(types) > max(tc.limit, 2) {
				t.Errorf("%d types left: %v", len(types), types)
			}
			if s.Counters("1").Map()["messages"] != 1 || s.Counters("3").Map()["storage"] != 3 {
				t.Errorf("configured fields lost: %v", s.Tenants)
			}
		})
	}
}

// TestCapMetricTypesUnreadable: the cap sees an unreadable field as one of
// its type (removed with it, not counted twice), and leaves a whole
// unreadable hash as it is.
func TestCapMetricTypesUnreadable(t *testing.T) {
	s := NewSnapshot("202611")
	bad := CountersOf(map[string]int64{"messages": 1, "x": 1, "y": UnreadableValue(ReasonInvalidValue)})
	s.Tenants = TenantMap{
		"1":     bad,
		"2":     CountersOf(map[string]int64{"x": 2, "y": 2}),
		"wrong": UnreadableHash(ReasonWrongType),
	}
	kept := s.CapMetricTypes([]MetricType{{Name: "messages"}}, 2, nil)
	if want := []string{"x"}; !slices.Equal(slices.Sorted(maps.Keys(kept)), want) {
		t.Errorf("kept %v, want %v (x and y tie at 2 tenants: name order)", slices.Sorted(maps.Keys(kept)), want)
	}
	if _, ok := s.Counters("1").Unreadable("y"); ok {
		t.Errorf("tenant 1 keeps the capped type y: %v", s.Counters("1"))
	}
	if got := s.Skipped[ReasonMetricTypeLimit]; got != 1 {
		t.Errorf("metric_type_limit = %d, want 1 (tenant 2's readable y only)", got)
	}
	if r, ok := s.Counters("wrong").HashUnreadable(); !ok || r != ReasonWrongType {
		t.Errorf("whole unreadable hash after the cap: %v", s.Counters("wrong"))
	}
}

// TestCapMetricTypesLeavesSharedCounters: the counters a reader handed out
// (the track mode's mirror keeps them across reads) are not modified, so
// the next snapshot made from them is capped, and counted, the same way.
func TestCapMetricTypesLeavesSharedCounters(t *testing.T) {
	shared := map[string]Counters{"1": CountersOf(map[string]int64{"messages": 1, "a": 1, "b": 2}), "2": CountersOf(map[string]int64{"messages": 3})}
	for read := range 2 {
		s := NewSnapshot("202611")
		s.Tenants = TenantMap(maps.Clone(shared))
		s.CapMetricTypes([]MetricType{{Name: "messages"}}, 2, nil)
		if got := s.Skipped[ReasonMetricTypeLimit]; got != 1 {
			t.Errorf("read %d: metric_type_limit = %d, want 1 (b)", read, got)
		}
		if _, ok := s.Counters("1").Map()["b"]; ok {
			t.Errorf("read %d: tenant 1 keeps the capped type b: %v", read, s.Counters("1"))
		}
	}
	if want := (CountersOf(map[string]int64{"messages": 1, "a": 1, "b": 2})); !shared["1"].Equal(want) {
		t.Errorf("shared counters modified: %v, want %v", shared["1"], want)
	}
}

// TestSnapshotRelease: Release drops the maps and gives them back to the
// reader that lent them exactly once, however often it is called; a
// snapshot nobody lent is released all the same.
func TestSnapshotRelease(t *testing.T) {
	for _, lent := range []bool{false, true} {
		snap := NewSnapshot("202611")
		snap.Tenants = TenantMap{"1": CountersOf(map[string]int64{"messages": 1})}
		snap.Types = TypeCounts{"messages": 1}
		back := 0
		if lent {
			snap.Lend(func() { back++ })
		}
		snap.Release()
		snap.Release()
		if snap.Tenants != nil || snap.Types != nil {
			t.Errorf("lent %v: maps still held after Release", lent)
		}
		if want := map[bool]int{false: 0, true: 1}[lent]; back != want {
			t.Errorf("lent %v: given back %d times, want %d", lent, back, want)
		}
	}
}

// TestUnion: parts that share no tenant read as one set, and a range over
// it stops where its body does.
func TestUnion(t *testing.T) {
	t.Parallel()
	one := CountersOf(map[string]int64{"messages": 1})
	a, b := TenantMap{"1": one, "2": one}, TenantMap{"3": one}
	if got := Union(a); !maps.Equal(got.(TenantMap), a) {
		t.Errorf("Union of one part = %v, want the part", got)
	}
	u := Union(a, TenantMap{}, b)
	if u.Len() != 3 {
		t.Errorf("Len = %d, want 3", u.Len())
	}
	for _, id := range []string{"1", "2", "3"} {
		if c, ok := u.Lookup(id); !ok || c != one {
			t.Errorf("Lookup(%s) = %v, %v", id, c, ok)
		}
	}
	if _, ok := u.Lookup("4"); ok {
		t.Error("Lookup(4) found a tenant no part holds")
	}
	key := "usage:3:202612"
	if id, c, ok := u.LookupID(key[6:7]); !ok || id != "3" || c != one || unsafe.StringData(id) == unsafe.StringData(key[6:7]) {
		t.Errorf("LookupID(3) = %q, %v, %v: want a copy of the id, and its counters", id, c, ok)
	}
	if id, c, ok := u.LookupID("4"); ok || id != "" || c != nil {
		t.Errorf("LookupID(4) = %q, %v, %v: found a tenant no part holds", id, c, ok)
	}
	if got := maps.Collect(u.All()); len(got) != 3 {
		t.Errorf("All = %v, want 3 tenants", got)
	}
	n := 0
	for range u.All() {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("a range stopped after 2 went on to %d", n)
	}
}
