package usage

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Reason says why a piece of usage data was skipped. The values are label
// values of the exporter's invalid-data metric: keep them stable.
type Reason string

// The reasons an item is skipped.
const (
	// ReasonMalformedKey: a key matched the SCAN pattern but does not parse
	// (bad period, bad tenant id, missing separator).
	ReasonMalformedKey Reason = "malformed_key"
	// ReasonWrongType: a usage key holds something other than a hash.
	ReasonWrongType Reason = "wrong_type"
	// ReasonInvalidField: a hash field name that cannot be a metric type.
	ReasonInvalidField Reason = "invalid_field"
	// ReasonInvalidValue: a field whose value is not a non-negative integer
	// that fits in int64.
	ReasonInvalidValue Reason = "invalid_value"
	// ReasonOversizedHash: a usage hash whose HGETALL reply is larger than
	// the exporter holds for one hash (--redis.max-reply-bytes), such as
	// one with a 200 MB value: left unread rather than held in memory.
	ReasonOversizedHash Reason = "oversized_hash"
	// ReasonMetricTypeLimit: a field of a metric type beyond the cap on
	// distinct metric types (--usage.max-metric-types).
	ReasonMetricTypeLimit Reason = "metric_type_limit"
)

// Reasons lists every Reason, so that a metric can report zeros too.
var Reasons = []Reason{ReasonMalformedKey, ReasonWrongType, ReasonInvalidField, ReasonInvalidValue, ReasonOversizedHash, ReasonMetricTypeLimit}

// ParseValue accepts a non-negative base-10 integer that fits in int64,
// which is what HINCRBY can produce. Anything else (floats, signs, spaces,
// values past int64) is rejected rather than rounded.
func ParseValue(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty value")
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("value %.32q is not a non-negative integer", b)
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, fmt.Errorf("value %.32q is out of range", b)
		}
		v = v*10 + d
	}
	return v, nil
}

// DecodeHash turns an HGETALL reply (field, value, field, value...) into
// Counters. Bad fields are skipped one by one and tallied in skipped, so one
// bad field never hides the good ones next to it. A field with a usable
// name but a bad value is kept as unreadable (see Hash): it is unknown, not
// 0. A bad name cannot be a metric type, so nothing derived depends on it.
func DecodeHash(pairs [][]byte, skipped map[Reason]int) Counters {
	var buf [8]field
	fields := buf[:0]
	for i := 0; i+1 < len(pairs); i += 2 {
		// The usual field names come from one table instead of a fresh
		// string per field per tenant (and need no validation).
		name, known := knownFields[string(pairs[i])]
		if !known {
			name = string(pairs[i])
			if ValidateMetricType(name) != nil {
				skipped[ReasonInvalidField]++
				continue
			}
		}
		v, err := ParseValue(pairs[i+1])
		if err != nil {
			skipped[ReasonInvalidValue]++
			v = UnreadableValue(ReasonInvalidValue)
		}
		fields = append(fields, field{name, v})
	}
	return buildHash(fields)
}

// Snapshot is one complete read of the usage state for a period. It is only
// ever built whole: a read that fails part-way yields an error, never a
// partial snapshot, so no tenant is reported with stale or missing numbers.
type Snapshot struct {
	PeriodID string
	// Tenants holds every tenant with a usage key for the period. The map
	// and the counters may be shared with the reader that made the
	// snapshot (the track mode's mirror keeps them across reads): never
	// modified in place (CapMetricTypes replaces them with copies).
	Tenants map[string]Counters
	// Keys counts keys that parse as usage keys, over all periods.
	Keys int
	// Skipped counts data left out, by reason.
	Skipped map[Reason]int
	// Types counts the tenants holding each field, when the reader kept
	// count (a reader that keeps the usage state between reads); nil:
	// CapMetricTypes counts them. Like Tenants, it may be shared with the
	// reader and is never modified.
	Types TypeCounts

	// giveBack, when set, tells the reader that lent Tenants and Types
	// that this snapshot no longer uses them (Release).
	giveBack func()
}

// Lend marks Tenants and Types as the reader's own maps, lent to this
// snapshot: Release calls giveBack, after which the reader may change them
// in place. Without Release the reader must treat them as shared for good
// (copy before changing).
func (s *Snapshot) Lend(giveBack func()) { s.giveBack = giveBack }

// Release ends the snapshot's use of its Tenants and Types: both become nil
// here, and a reader that lent them (Lend) gets them back, to change in
// place rather than copy a map of every tenant on its next change. The
// join calls it once it holds what it needs of them (each tenant's
// counters, which are never modified, stay valid). Safe to call more than
// once.
func (s *Snapshot) Release() {
	s.Tenants, s.Types = nil, nil
	if f := s.giveBack; f != nil {
		s.giveBack = nil
		f()
	}
}

// TypeCounts counts, per metric type, the tenants whose counters hold a
// field of it, readable or not (the marker of a whole unreadable hash is
// of no type).
type TypeCounts map[string]int

// Add counts the fields of c, delta times.
func (tc TypeCounts) Add(c Counters, delta int) {
	c.eachField(func(field string, _ int64) {
		if field == wholeHash {
			return
		}
		if n := tc[field] + delta; n != 0 {
			tc[field] = n
		} else {
			delete(tc, field)
		}
	})
}

// NewSnapshot returns an empty snapshot for a period.
func NewSnapshot(periodID string) *Snapshot {
	return &Snapshot{PeriodID: periodID, Tenants: map[string]Counters{}, Skipped: map[Reason]int{}}
}

// CapMetricTypes keeps at most limit distinct metric types in the snapshot,
// so that hash fields nobody configured (a backend bug, hostile data: one
// unique field per tenant, one hash of 100k fields) cannot multiply the
// per-tenant series without bound. The configured types are always kept
// and come first; the remaining room goes to the other types held by the
// most tenants, then in name order, so that the choice is the same from
// one read to the next. Every field of a type left out is removed and
// counted under ReasonMetricTypeLimit. limit <= 0 keeps every type. It
// returns the types kept that are not configured.
func (s *Snapshot) CapMetricTypes(configured []MetricType, limit int) map[string]bool {
	known := make(map[string]bool, len(configured))
	for _, mt := range configured {
		known[mt.Name] = true
	}
	counts := s.Types
	if counts == nil {
		counts = TypeCounts{}
		for _, c := range s.Tenants {
			counts.Add(c, 1)
		}
	}
	tenants := map[string]int{} // other types -> tenants holding them
	for field, n := range counts {
		// An unreadable field is of its type too.
		if !known[field] {
			tenants[field] = n
		}
	}
	kept := make(map[string]bool, len(tenants))
	if limit <= 0 || len(known)+len(tenants) <= limit {
		for field := range tenants {
			kept[field] = true
		}
		return kept
	}
	others := slices.SortedFunc(maps.Keys(tenants), func(a, b string) int {
		if d := tenants[b] - tenants[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, field := range others[:min(len(others), max(0, limit-len(known)))] {
		kept[field] = true
	}
	// The map may be shared with the reader that made the snapshot (the
	// track mode's mirror keeps it across reads): it is copied before the
	// first change. Counters are never modified: a tenant with fields to
	// remove gets new ones.
	var capped map[string]Counters
	for tenant, c := range s.Tenants {
		if trimmed := KeepMetricTypes(c, known, kept, s.Skipped); trimmed != c {
			if capped == nil {
				capped = maps.Clone(s.Tenants)
			}
			capped[tenant] = trimmed
		}
	}
	if capped != nil {
		// The counts are of the fields before the cap.
		s.Tenants, s.Types = capped, nil
	}
	return kept
}

// KeepMetricTypes returns c less every field that is neither configured
// nor kept (c itself when there is none), counting each in skipped. An
// unreadable field removed was already counted under its own reason, and
// is not counted twice; the marker of a whole unreadable hash stays.
func KeepMetricTypes(c Counters, configured, kept map[string]bool, skipped map[Reason]int) Counters {
	return c.without(func(field string, v int64) bool {
		if field == wholeHash || configured[field] || kept[field] {
			return false
		}
		if v >= 0 {
			skipped[ReasonMetricTypeLimit]++
		}
		return true
	})
}

// MetricType describes a usage hash field the exporter knows about.
type MetricType struct {
	Name string
	// MonthlyReset marks a counter that accumulates over the period and
	// restarts at zero (messages), as opposed to a current count (users):
	// only these get an end-of-period projection.
	MonthlyReset bool
}

// knownFields interns the default metric type names.
var knownFields = func() map[string]string {
	m := map[string]string{}
	for _, mt := range DefaultMetricTypes {
		m[mt.Name] = mt.Name
	}
	return m
}()

// DefaultMetricTypes are the fields the backend writes today.
var DefaultMetricTypes = []MetricType{
	{Name: "messages", MonthlyReset: true},
	{Name: "storage"},
	{Name: "users"},
	{Name: "whatsappSessions"},
}

// MetricTypeNames returns the names of mts, in order.
func MetricTypeNames(mts []MetricType) []string {
	names := make([]string, len(mts))
	for i, mt := range mts {
		names[i] = mt.Name
	}
	return names
}
