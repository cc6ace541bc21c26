// Package usage models usage keys and hashes.
package usage

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultKeyPattern is the backend's key pattern.
const DefaultKeyPattern = "usage:{tenant_id}:{period}"

const (
	tenantPlaceholder = "{tenant_id}"
	periodPlaceholder = "{period}"
	periodLen         = len("YYYYMM")

	// MaxTenantIDLen bounds tenant and plan ids.
	MaxTenantIDLen = 128
	// MaxMetricTypeLen bounds metric type names.
	MaxMetricTypeLen = 64
)

// KeyPattern is a parsed key pattern.
type KeyPattern struct {
	raw                    string
	prefix, middle, suffix string
	periodFirst            bool
}

// ParseKeyPattern parses a KeyPattern.
func ParseKeyPattern(s string) (KeyPattern, error) {
	if strings.Count(s, tenantPlaceholder) != 1 || strings.Count(s, periodPlaceholder) != 1 {
		return KeyPattern{}, fmt.Errorf("key pattern %q must contain {tenant_id} and {period} exactly once each", s)
	}
	p := KeyPattern{raw: s, periodFirst: strings.Index(s, periodPlaceholder) < strings.Index(s, tenantPlaceholder)}
	first, second := tenantPlaceholder, periodPlaceholder
	if p.periodFirst {
		first, second = second, first
	}
	p.prefix, p.middle, _ = strings.Cut(s, first)
	p.middle, p.suffix, _ = strings.Cut(p.middle, second)
	if p.middle == "" {
		// Else a tenant id ending in digits runs into the period.
		return KeyPattern{}, fmt.Errorf("key pattern %q needs literal text between {tenant_id} and {period}", s)
	}
	if strings.ContainsAny(p.prefix+p.middle+p.suffix, "{}") {
		return KeyPattern{}, fmt.Errorf("key pattern %q has an unknown placeholder", s)
	}
	return p, nil
}

// MustParseKeyPattern panics on error.
func MustParseKeyPattern(s string) KeyPattern {
	p, err := ParseKeyPattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the raw pattern.
func (p KeyPattern) String() string { return p.raw }

// Key returns a usage key.
func (p KeyPattern) Key(tenantID, periodID string) string {
	if p.periodFirst {
		return p.prefix + periodID + p.middle + tenantID + p.suffix
	}
	return p.prefix + tenantID + p.middle + periodID + p.suffix
}

// Glob returns the SCAN MATCH pattern; Parse may reject matches.
func (p KeyPattern) Glob() string {
	return globEscaper.Replace(p.prefix) + "*" + globEscaper.Replace(p.middle) + "*" + globEscaper.Replace(p.suffix)
}

// ErrMalformedKey is Parse's error.
var ErrMalformedKey = errors.New("malformed usage key")

// Parse splits a key.
func (p KeyPattern) Parse(key string) (tenantID, periodID string, err error) {
	rest, ok := strings.CutPrefix(key, p.prefix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q lacks prefix %q", ErrMalformedKey, key, p.prefix)
	}
	rest, ok = strings.CutSuffix(rest, p.suffix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q lacks suffix %q", ErrMalformedKey, key, p.suffix)
	}
	if len(rest) < periodLen+len(p.middle)+1 {
		return "", "", fmt.Errorf("%w: %q is too short", ErrMalformedKey, key)
	}
	if p.periodFirst {
		periodID, rest = rest[:periodLen], rest[periodLen:]
		tenantID, ok = strings.CutPrefix(rest, p.middle)
	} else {
		periodID, rest = rest[len(rest)-periodLen:], rest[:len(rest)-periodLen]
		tenantID, ok = strings.CutSuffix(rest, p.middle)
	}
	if !ok {
		return "", "", fmt.Errorf("%w: %q has no separator %q next to the period", ErrMalformedKey, key, p.middle)
	}
	if err := cmp.Or(validatePeriodID(periodID), ValidateID(TenantID, tenantID)); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	return tenantID, periodID, nil
}

func validatePeriodID(s string) error {
	if len(s) != periodLen || strings.Trim(s, "0123456789") != "" {
		return fmt.Errorf("period %q is not YYYYMM", s)
	}
	if month := s[4:]; month < "01" || month > "12" {
		return fmt.Errorf("period %q has month %s", s, month)
	}
	return nil
}

// ValidateID kinds.
const (
	TenantID = "tenant id"
	PlanID   = "plan id"
)

// ValidateID checks a printable id without glob characters.
func ValidateID(kind, id string) error {
	return validate(kind, id, MaxTenantIDLen, true)
}

// ValidateMetricType checks a field name.
func ValidateMetricType(name string) error {
	return ValidateLabel("field name", name, MaxMetricTypeLen)
}

// ValidateLabel checks a printable label value.
func ValidateLabel(what, s string, maxLen int) error { return validate(what, s, maxLen, false) }

func validate(what, s string, maxLen int, noGlob bool) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxLen:
		return fmt.Errorf("%s is longer than %d bytes", what, maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case noGlob && strings.ContainsAny(s, "*?[]\\"):
		return fmt.Errorf("%s contains a glob character", what)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			for _, r := range s[i:] {
				if !unicode.IsPrint(r) {
					return fmt.Errorf("%s contains the non-printable character %U", what, r)
				}
			}
			return nil
		}
	}
	return nil
}

// LiteralPrefix returns every key's prefix.
func (p KeyPattern) LiteralPrefix() string { return p.prefix }

// MatchesGlob reports whether key matches Glob.
func (p KeyPattern) MatchesGlob(key string) bool {
	if len(key) < len(p.prefix)+len(p.middle)+len(p.suffix) ||
		!strings.HasPrefix(key, p.prefix) || !strings.HasSuffix(key, p.suffix) {
		return false
	}
	return strings.Contains(key[len(p.prefix):len(key)-len(p.suffix)], p.middle)
}

// globEscaper escapes the characters SCAN MATCH treats as special.
var globEscaper = strings.NewReplacer("*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`, `\`, `\\`)
