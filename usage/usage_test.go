package usage

import (
	"fmt"
	"maps"
	"slices"
	"testing"
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
	want := Counters{"messages": 4250, "whatsappSessions": 1, "newThing": 7}
	if !maps.Equal(got, want) {
		t.Errorf("counters = %v, want %v", got, want)
	}
	wantSkipped := map[Reason]int{ReasonInvalidValue: 2, ReasonInvalidField: 2}
	if !maps.Equal(skipped, wantSkipped) {
		t.Errorf("skipped = %v, want %v", skipped, wantSkipped)
	}
}

func TestCapMetricTypes(t *testing.T) {
	configured := []MetricType{{Name: "messages"}, {Name: "storage"}}
	snapshot := func() *Snapshot {
		s := NewSnapshot("202611")
		s.Tenants = map[string]Counters{
			"1": {"messages": 1, "apiCalls": 1, "b": 1, "z1": 1},
			"2": {"messages": 2, "apiCalls": 2, "a": 2, "z2": 2},
			"3": {"storage": 3, "apiCalls": 3, "a": 3, "b": 3, "z3": 3},
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
			kept := s.CapMetricTypes(configured, tc.limit)
			if got := slices.Sorted(maps.Keys(kept)); !slices.Equal(got, tc.kept) {
				t.Errorf("kept %v, want %v", got, tc.kept)
			}
			if s.Skipped[ReasonMetricTypeLimit] != tc.skipped {
				t.Errorf("skipped %d fields, want %d", s.Skipped[ReasonMetricTypeLimit], tc.skipped)
			}
			types := map[string]bool{}
			for _, c := range s.Tenants {
				for f := range c {
					types[f] = true
				}
			}
			if tc.limit > 0 && len(types) > max(tc.limit, 2) {
				t.Errorf("%d types left: %v", len(types), types)
			}
			if s.Tenants["1"]["messages"] != 1 || s.Tenants["3"]["storage"] != 3 {
				t.Errorf("configured fields lost: %v", s.Tenants)
			}
		})
	}
}
