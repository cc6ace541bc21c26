package usage

import "strings"

// LiteralPrefix returns the literal text before the pattern's first
// placeholder: every usage key starts with it. It may be empty.
func (p KeyPattern) LiteralPrefix() string { return p.prefix }

// MatchesGlob reports whether key matches Glob() the way Redis' SCAN MATCH
// does, without a round trip: prefix, anything, middle, anything, suffix.
// It lets a reader that learns of a key by other means than SCAN (a key
// tracking invalidation) treat it exactly as SCAN would have.
func (p KeyPattern) MatchesGlob(key string) bool {
	if len(key) < len(p.prefix)+len(p.middle)+len(p.suffix) ||
		!strings.HasPrefix(key, p.prefix) || !strings.HasSuffix(key, p.suffix) {
		return false
	}
	return strings.Contains(key[len(p.prefix):len(key)-len(p.suffix)], p.middle)
}
