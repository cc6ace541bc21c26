package usage

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
)

// Reason says why data was skipped; a label value.
type Reason string

// The reasons data is skipped.
const (
	ReasonMalformedKey    Reason = "malformed_key"
	ReasonWrongType       Reason = "wrong_type"
	ReasonInvalidField    Reason = "invalid_field"
	ReasonInvalidValue    Reason = "invalid_value"
	ReasonOversizedHash   Reason = "oversized_hash"    // over --redis.max-reply-bytes
	ReasonMetricTypeLimit Reason = "metric_type_limit" // over --usage.max-metric-types
)

// Reasons lists every Reason.
var Reasons = []Reason{ReasonMalformedKey, ReasonWrongType, ReasonInvalidField, ReasonInvalidValue, ReasonOversizedHash, ReasonMetricTypeLimit}

// ParseValue parses a HINCRBY value.
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

// DecodeHash decodes an HGETALL reply.
func DecodeHash(pairs [][]byte, skipped map[Reason]int) Counters {
	var buf [8]field
	fields := buf[:0]
	for i := 0; i+1 < len(pairs); i += 2 {
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

// Tenants is a read-only set of tenants' counters.
type Tenants interface {
	Len() int
	Lookup(tenant string) (Counters, bool)
	// LookupID is Lookup that also returns an id equal to tenant that
	// shares no memory with it, the set's own where it can lend it.
	LookupID(tenant string) (string, Counters, bool)
	All() iter.Seq2[string, Counters] // in no order
}

// TenantMap is Tenants in a map.
type TenantMap map[string]Counters

// Len returns the number of tenants.
func (m TenantMap) Len() int { return len(m) }

// Lookup returns a tenant's counters.
func (m TenantMap) Lookup(tenant string) (Counters, bool) { c, ok := m[tenant]; return c, ok }

// LookupID returns a copy of tenant, since a map does not lend its keys.
func (m TenantMap) LookupID(tenant string) (string, Counters, bool) {
	c, ok := m[tenant]
	if !ok {
		return "", nil, false
	}
	return strings.Clone(tenant), c, true
}

// All yields every tenant.
func (m TenantMap) All() iter.Seq2[string, Counters] { return maps.All(m) }

// Union returns parts, which hold no tenant twice, as one Tenants.
func Union(parts ...Tenants) Tenants {
	if len(parts) == 1 {
		return parts[0]
	}
	return union(parts)
}

type union []Tenants

func (u union) Len() int {
	n := 0
	for _, p := range u {
		n += p.Len()
	}
	return n
}

func (u union) Lookup(tenant string) (Counters, bool) {
	for _, p := range u {
		if c, ok := p.Lookup(tenant); ok {
			return c, true
		}
	}
	return nil, false
}

func (u union) LookupID(tenant string) (string, Counters, bool) {
	for _, p := range u {
		if id, c, ok := p.LookupID(tenant); ok {
			return id, c, true
		}
	}
	return "", nil, false
}

func (u union) All() iter.Seq2[string, Counters] {
	return func(yield func(string, Counters) bool) {
		for _, p := range u {
			for tenant, c := range p.All() {
				if !yield(tenant, c) {
					return
				}
			}
		}
	}
}

// Snapshot is one full usage read.
type Snapshot struct {
	PeriodID string
	Tenants  Tenants // shared: never modified
	Keys     int     // all periods
	Skipped  map[Reason]int
	Types    TypeCounts // shared; may be nil

	// Seq numbers the snapshots of a source. When Base is not 0, Changed
	// lists every tenant whose counters differ from snapshot Base's.
	Seq, Base uint64
	Changed   []string

	giveBack func()
}

var seqs atomic.Uint64

// NextSeq returns a Seq no other snapshot of the process has.
func NextSeq() uint64 { return seqs.Add(1) }

// Counters returns a tenant's counters, nil without them.
func (s *Snapshot) Counters(tenant string) Counters {
	c, _ := s.Tenants.Lookup(tenant)
	return c
}

// Lend makes Release call giveBack.
func (s *Snapshot) Lend(giveBack func()) { s.giveBack = giveBack }

// Release drops Tenants and Types; safe to repeat.
func (s *Snapshot) Release() {
	s.Tenants, s.Types = nil, nil
	if f := s.giveBack; f != nil {
		s.giveBack = nil
		f()
	}
}

// TypeCounts counts tenants per metric type.
type TypeCounts map[string]int

// Add counts c's fields delta times.
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

// NewSnapshot returns an empty Snapshot.
func NewSnapshot(periodID string) *Snapshot {
	return &Snapshot{PeriodID: periodID, Tenants: TenantMap{}, Skipped: map[Reason]int{}}
}

// CapMetricTypes keeps the configured types and up to limit (<= 0: all)
// others, those most held or kept; it returns the others kept.
func (s *Snapshot) CapMetricTypes(configured []MetricType, limit int, kept map[string]bool) map[string]bool {
	known := make(map[string]bool, len(configured))
	for _, mt := range configured {
		known[mt.Name] = true
	}
	if kept == nil {
		var all bool
		if kept, all = s.chooseTypes(known, limit); all {
			return kept
		}
	}
	var capped TenantMap
	for tenant, c := range s.Tenants.All() {
		trimmed := c.without(func(field string, v int64) bool {
			if field == wholeHash || known[field] || kept[field] {
				return false
			}
			if v >= 0 {
				s.Skipped[ReasonMetricTypeLimit]++
			}
			return true
		})
		if trimmed != c {
			if capped == nil {
				capped = maps.Collect(s.Tenants.All())
			}
			capped[tenant] = trimmed
		}
	}
	if capped != nil {
		s.Tenants, s.Types = capped, nil
	}
	return kept
}

func (s *Snapshot) chooseTypes(known map[string]bool, limit int) (kept map[string]bool, all bool) {
	counts := s.Types
	if counts == nil {
		counts = TypeCounts{}
		for _, c := range s.Tenants.All() {
			counts.Add(c, 1)
		}
	}
	kept = map[string]bool{}
	for field := range counts {
		if !known[field] {
			kept[field] = true
		}
	}
	if limit <= 0 || len(known)+len(kept) <= limit {
		return kept, true
	}
	others := slices.SortedFunc(maps.Keys(kept), func(a, b string) int {
		return cmp.Or(counts[b]-counts[a], strings.Compare(a, b))
	})
	clear(kept)
	for _, field := range others[:min(len(others), max(0, limit-len(known)))] {
		kept[field] = true
	}
	return kept, false
}

// MetricType is a configured usage field.
type MetricType struct {
	Name         string
	MonthlyReset bool // restarts each period: projected
}

var knownFields = func() map[string]string {
	m := map[string]string{}
	for _, mt := range DefaultMetricTypes {
		m[mt.Name] = mt.Name
	}
	return m
}()

// DefaultMetricTypes are the backend's fields.
var DefaultMetricTypes = []MetricType{
	{Name: "messages", MonthlyReset: true},
	{Name: "storage"},
	{Name: "users"},
	{Name: "whatsappSessions"},
}

// MetricTypeNames returns the names of mts.
func MetricTypeNames(mts []MetricType) []string {
	names := make([]string, len(mts))
	for i, mt := range mts {
		names[i] = mt.Name
	}
	return names
}
