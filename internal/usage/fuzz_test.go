package usage

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseKey: whatever Redis holds, parsing a key never panics, and a key
// that parses has a valid tenant id and period and rebuilds to itself.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"usage:1:202611", "usage:a:b:202611", "usage::202611", "usage:1:2026-11",
		"usage:\xff:202611", "usage:\n:202611", "usage:*:202611", "usage:1:202613", "x", ""} {
		f.Add(DefaultKeyPattern, s)
	}
	f.Add("{period}|{tenant_id}|x", "202611|42|x")
	f.Fuzz(func(t *testing.T, pattern, key string) {
		p, err := ParseKeyPattern(pattern)
		if err != nil {
			return
		}
		_ = p.Glob()
		tenant, period, err := p.Parse(key)
		if err != nil {
			return
		}
		if ValidateID(TenantID, tenant) != nil || validatePeriodID(period) != nil {
			t.Fatalf("Parse(%q) accepted tenant %q period %q", key, tenant, period)
		}
		if back := p.Key(tenant, period); back != key {
			t.Fatalf("Key(Parse(%q)) = %q", key, back)
		}
	})
}

// FuzzDecodeHash: any HGETALL reply decodes without panicking, and every
// kept field is a valid metric type with a non-negative value.
func FuzzDecodeHash(f *testing.F) {
	f.Add("messages", "4250", "storage", "-1")
	f.Add("users", "1.5", "", "99999999999999999999")
	f.Add("bad\xfffield", "1", "whatsappSessions", "0")
	f.Fuzz(func(t *testing.T, f1, v1, f2, v2 string) {
		skipped := map[Reason]int{}
		c := DecodeHash([][]byte{[]byte(f1), []byte(v1), []byte(f2), []byte(v2)}, skipped)
		total := 0
		c.Each(func(field string, v int64) {
			if v < 0 || ValidateMetricType(field) != nil || !utf8.ValidString(field) {
				t.Fatalf("kept %q = %d", field, v)
			}
			total++
		})
		c.EachUnreadable(func(field string, _ Reason) {
			if ValidateMetricType(field) != nil {
				t.Fatalf("kept unreadable %q", field)
			}
		})
		for _, n := range skipped {
			total += n
		}
		if total < 1 || total > 2 {
			t.Fatalf("%d fields kept or skipped out of 2 (%v %v)", total, c, skipped)
		}
	})
}

// FuzzValidateID: an accepted id is safe as a label value and as a
// literal in a Redis key (no glob characters, no control characters).
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"1", "*", "1*", "../1", "1\x00", strings.Repeat("9", 200), "ação"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidateID(TenantID, id) != nil {
			return
		}
		if !utf8.ValidString(id) || strings.ContainsAny(id, "*?[]\\\n\r\x00") || len(id) > MaxTenantIDLen {
			t.Fatalf("accepted %q", id)
		}
	})
}
