// Package usage is the domain model of the backend's usage state: how usage
// keys are named, which tenant ids and metric types are acceptable, and how
// a usage hash decodes into counters. It knows nothing of Redis clients,
// Prometheus or HTTP.
package usage

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultKeyPattern is how the backend names usage hashes.
const DefaultKeyPattern = "usage:{tenant_id}:{period}"

const (
	tenantPlaceholder = "{tenant_id}"
	periodPlaceholder = "{period}"
	periodLen         = len("YYYYMM")

	// MaxTenantIDLen bounds tenant ids read from keys or asked for by API
	// clients, so that neither a hostile key nor a hostile URL can produce
	// unbounded label values.
	MaxTenantIDLen = 128
	// MaxMetricTypeLen bounds hash field names used as metric types.
	MaxMetricTypeLen = 64
)

// KeyPattern is a parsed --usage.key-pattern: literal text around exactly one
// {tenant_id} and one {period} placeholder, in either order.
type KeyPattern struct {
	raw         string
	prefix      string // before the first placeholder
	middle      string // between the placeholders; never empty
	suffix      string // after the second placeholder
	periodFirst bool
}

// ParseKeyPattern validates a key pattern such as "usage:{tenant_id}:{period}".
func ParseKeyPattern(s string) (KeyPattern, error) {
	if strings.Count(s, tenantPlaceholder) != 1 || strings.Count(s, periodPlaceholder) != 1 {
		return KeyPattern{}, fmt.Errorf("key pattern %q must contain {tenant_id} and {period} exactly once each", s)
	}
	ti := strings.Index(s, tenantPlaceholder)
	pi := strings.Index(s, periodPlaceholder)
	p := KeyPattern{raw: s, periodFirst: pi < ti}
	first, firstLen, second, secondLen := ti, len(tenantPlaceholder), pi, len(periodPlaceholder)
	if p.periodFirst {
		first, firstLen, second, secondLen = pi, len(periodPlaceholder), ti, len(tenantPlaceholder)
	}
	p.prefix = s[:first]
	p.middle = s[first+firstLen : second]
	p.suffix = s[second+secondLen:]
	if p.middle == "" {
		// Without a separator a tenant id ending in digits could not be told
		// apart from the period.
		return KeyPattern{}, fmt.Errorf("key pattern %q needs literal text between {tenant_id} and {period}", s)
	}
	for _, lit := range []string{p.prefix, p.middle, p.suffix} {
		if strings.ContainsAny(lit, "{}") {
			return KeyPattern{}, fmt.Errorf("key pattern %q has an unknown placeholder", s)
		}
	}
	return p, nil
}

// MustParseKeyPattern is ParseKeyPattern for patterns known at compile time.
func MustParseKeyPattern(s string) KeyPattern {
	p, err := ParseKeyPattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as given.
func (p KeyPattern) String() string { return p.raw }

// Key returns the usage key of a tenant for a period.
func (p KeyPattern) Key(tenantID, periodID string) string {
	if p.periodFirst {
		return p.prefix + periodID + p.middle + tenantID + p.suffix
	}
	return p.prefix + tenantID + p.middle + periodID + p.suffix
}

// Glob returns the SCAN MATCH pattern that finds the usage keys of every
// tenant and period. It may match keys that Parse rejects; those are counted
// as malformed.
func (p KeyPattern) Glob() string {
	return globEscape(p.prefix) + "*" + globEscape(p.middle) + "*" + globEscape(p.suffix)
}

// ErrMalformedKey is returned by Parse for a key that does not follow the
// pattern.
var ErrMalformedKey = errors.New("malformed usage key")

// Parse splits a key into tenant id and period id. The period is exactly six
// digits (YYYYMM), which makes the split unambiguous even when a tenant id
// contains the separator.
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
	if err := ValidatePeriodID(periodID); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	if err := ValidateID(TenantID, tenantID); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	return tenantID, periodID, nil
}

// ValidatePeriodID accepts YYYYMM with a month from 01 to 12.
func ValidatePeriodID(s string) error {
	if len(s) != periodLen {
		return fmt.Errorf("period %q is not YYYYMM", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("period %q is not YYYYMM", s)
		}
	}
	if month := s[4:]; month < "01" || month > "12" {
		return fmt.Errorf("period %q has month %s", s, month)
	}
	return nil
}

// The kinds of id ValidateID names in its errors.
const (
	TenantID = "tenant id"
	PlanID   = "plan id"
)

// ValidateID is the one rule for ids, tenant and plan ids alike, whether
// they come from a Redis key, a plans source or an API path (both end up as
// label values and in API paths): non-empty, bounded, valid UTF-8,
// printable, and free of the glob characters that would turn a key lookup
// into a pattern match. kind (TenantID, PlanID) names the id in errors.
func ValidateID(kind, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", kind)
	case len(id) > MaxTenantIDLen:
		return fmt.Errorf("%s is longer than %d bytes", kind, MaxTenantIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s is not valid UTF-8", kind)
	case strings.ContainsAny(id, "*?[]\\"):
		return fmt.Errorf("%s contains a glob character", kind)
	}
	return checkPrintable(id, kind)
}

// checkPrintable rejects control and other non-printable characters, with
// a fast path for the printable ASCII that ids and field names almost
// always are (this runs for every key of every scrape).
func checkPrintable(s, what string) error {
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

// ValidateMetricType checks a hash field name before it becomes a label value.
func ValidateMetricType(name string) error {
	switch {
	case name == "":
		return errors.New("field name is empty")
	case len(name) > MaxMetricTypeLen:
		return fmt.Errorf("field name is longer than %d bytes", MaxMetricTypeLen)
	case !utf8.ValidString(name):
		return errors.New("field name is not valid UTF-8")
	}
	return checkPrintable(name, "field name")
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
