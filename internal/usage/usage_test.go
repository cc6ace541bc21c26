package usage

import (
	"maps"
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
