package usage

import "testing"

func TestMatchesGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{DefaultKeyPattern, "usage:1:202611", true},
		{DefaultKeyPattern, "usage::", true}, // Glob matches it; Parse rejects it
		{DefaultKeyPattern, "usage:", false},
		{DefaultKeyPattern, "usage:x", false},
		{DefaultKeyPattern, "usagex:1:202611", false},
		{DefaultKeyPattern, "other:1:202611", false},
		{"t:{period}/{tenant_id}.u", "t:202611/a.u", true},
		{"t:{period}/{tenant_id}.u", "t:/.u", true},
		{"t:{period}/{tenant_id}.u", "t:/u", false},
		{"t:{period}/{tenant_id}.u", "t:202611/a.v", false},
		{"{tenant_id}-{period}", "a-202611", true},
		{"{tenant_id}-{period}", "a202611", false},
		{"ab{tenant_id}b{period}", "ab", false}, // the prefix and middle may not overlap
	} {
		p := MustParseKeyPattern(tc.pattern)
		if got := p.MatchesGlob(tc.key); got != tc.want {
			t.Errorf("%q MatchesGlob(%q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
	if got := MustParseKeyPattern("{tenant_id}:{period}").LiteralPrefix(); got != "" {
		t.Errorf("LiteralPrefix = %q, want empty", got)
	}
	if got := MustParseKeyPattern(DefaultKeyPattern).LiteralPrefix(); got != "usage:" {
		t.Errorf("LiteralPrefix = %q, want usage:", got)
	}
}
