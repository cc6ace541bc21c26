package usage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKeyPattern(t *testing.T) {
	cases := []struct {
		pattern string
		wantErr bool
		glob    string
	}{
		{DefaultKeyPattern, false, "usage:*:*"},
		{"{period}/{tenant_id}", false, "*/*"},
		{"bill[x]:{tenant_id}:{period}:v1", false, `bill\[x\]:*:*:v1`},
		{"usage:{tenant_id}{period}", true, ""},
		{"usage:{tenant_id}", true, ""},
		{"usage:{period}:{period}", true, ""},
		{"usage:{tenant_id}:{period}:{other}", true, ""},
		{"", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.pattern, func(t *testing.T) {
			p, err := ParseKeyPattern(tc.pattern)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && p.Glob() != tc.glob {
				t.Errorf("Glob = %q, want %q", p.Glob(), tc.glob)
			}
		})
	}
}

func TestKeyParseRoundTrip(t *testing.T) {
	cases := []struct {
		pattern, key, tenant, period string
		wantErr                      bool
	}{
		{DefaultKeyPattern, "usage:1:202611", "1", "202611", false},
		{DefaultKeyPattern, "usage:acme-corp:202612", "acme-corp", "202612", false},
		{DefaultKeyPattern, "usage:a:b:202611", "a:b", "202611", false},
		{DefaultKeyPattern, "usage:ümlaut tenant:202611", "ümlaut tenant", "202611", false},
		{DefaultKeyPattern, `usage:quote"d:202611`, `quote"d`, "202611", false},
		{"{period}|{tenant_id}|x", "202611|42|x", "42", "202611", false},
		{DefaultKeyPattern, "usage:1:2026-11", "", "", true},
		{DefaultKeyPattern, "usage:1:202613", "", "", true},
		{DefaultKeyPattern, "usage::202611", "", "", true},
		{DefaultKeyPattern, "usage:1202611", "", "", true},
		{DefaultKeyPattern, "usage:x", "", "", true},
		{DefaultKeyPattern, "other:1:202611", "", "", true},
		{DefaultKeyPattern, "usage:new\nline:202611", "", "", true},
		{DefaultKeyPattern, "usage:bad\xff:202611", "", "", true},
		{DefaultKeyPattern, "usage:glob*:202611", "", "", true},
		{DefaultKeyPattern, "usage:" + strings.Repeat("9", MaxTenantIDLen+1) + ":202611", "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			p := MustParseKeyPattern(tc.pattern)
			tenant, period, err := p.Parse(tc.key)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformedKey) {
					t.Fatalf("Parse(%q) err = %v, want ErrMalformedKey", tc.key, err)
				}
				return
			}
			if err != nil || tenant != tc.tenant || period != tc.period {
				t.Fatalf("Parse(%q) = %q, %q, %v; want %q, %q", tc.key, tenant, period, err, tc.tenant, tc.period)
			}
			if back := p.Key(tenant, period); back != tc.key {
				t.Errorf("Key(%q, %q) = %q, want %q", tenant, period, back, tc.key)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	good := []string{"1", "42", "acme", "tenant with space", "ação", "a:b"}
	bad := []string{"", "*", "1*", "a?b", "[1]", `a\b`, "1\x00", "a\tb", "\xff", strings.Repeat("1", 10000)}
	for _, id := range good {
		if err := ValidateID(TenantID, id); err != nil {
			t.Errorf("ValidateID(TenantID, %q) = %v", id, err)
		}
	}
	for _, id := range bad {
		if err := ValidateID(TenantID, id); err == nil {
			t.Errorf("ValidateID(TenantID, %.20q) accepted", id)
		}
	}
}
