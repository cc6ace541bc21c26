package usage

// A field the backend wrote but that could not be read, and a whole usage
// hash that could not be read, are kept in Counters rather than dropped: a
// dropped field looks exactly like an absent one, and an absent field is a
// real 0 (a tenant that sent no message yet). From a 0 that is not one the
// join would compute a percentage, count the tenant under every threshold
// and project its month, each a wrong number that hides the tenant from the
// near-limit list and alerts.
//
// They are stored as negative values, which no readable field can hold
// (ParseValue accepts only non-negative integers), so that the fact travels
// with the tenant's counters through every reader and cache without a
// second map per tenant. Read Counters with Value, Each and Unreadable, not
// by indexing or ranging over the map.

// wholeHash is the Counters key of a hash that could not be read at all (a
// usage key of another type). It cannot be a metric type: those are never
// empty.
const wholeHash = ""

// unreadableCodes numbers the reasons a field can be unreadable; the
// stored value is the code's negation.
var unreadableCodes = func() map[Reason]int64 {
	m := make(map[Reason]int64, len(Reasons))
	for i, r := range Reasons {
		m[r] = int64(i + 1)
	}
	return m
}()

// MarkUnreadable records that field was present but could not be read,
// and why.
func (c Counters) MarkUnreadable(field string, reason Reason) {
	c[field] = -unreadableCodes[reason]
}

// UnreadableHash returns the counters of a usage hash that exists but
// could not be read at all (ReasonWrongType): every metric type of the
// tenant is unreadable.
func UnreadableHash(reason Reason) Counters {
	c := Counters{}
	c.MarkUnreadable(wholeHash, reason)
	return c
}

// Unreadable reports whether metricType was present but could not be
// read, and why: the field itself, or the whole hash.
func (c Counters) Unreadable(metricType string) (Reason, bool) {
	_, reason, ok := c.lookup(metricType)
	return reason, !ok
}

func reasonOf(v int64) Reason {
	if i := int(-v) - 1; i >= 0 && i < len(Reasons) {
		return Reasons[i]
	}
	return ReasonInvalidValue
}

// Value returns the value of a metric type: 0 when the field is absent
// (nothing counted yet), and ok false when it is unreadable.
func (c Counters) Value(metricType string) (v int64, ok bool) {
	v, _, ok = c.lookup(metricType)
	return v, ok
}

// lookup is Value and Unreadable in one map lookup in the usual case: the
// join calls it for every limit of every tenant on every scrape. A whole
// unreadable hash holds its marker only, so the marker is looked for only
// when the field is absent from a one-entry map.
func (c Counters) lookup(metricType string) (v int64, reason Reason, ok bool) {
	v, present := c[metricType]
	if !present && len(c) == 1 {
		v = c[wholeHash]
	}
	if v < 0 {
		return 0, reasonOf(v), false
	}
	return v, "", true
}

// Each calls f for every readable field, in no particular order.
func (c Counters) Each(f func(metricType string, v int64)) {
	for mt, v := range c {
		if v >= 0 {
			f(mt, v)
		}
	}
}

// EachUnreadable calls f for every field that was present but could not
// be read, in no particular order; a whole unreadable hash has no fields.
func (c Counters) EachUnreadable(f func(metricType string, reason Reason)) {
	for mt, v := range c {
		if v < 0 && mt != wholeHash {
			f(mt, reasonOf(v))
		}
	}
}

// HashUnreadable reports whether the whole hash could not be read, and why.
func (c Counters) HashUnreadable() (Reason, bool) {
	if v, ok := c[wholeHash]; ok && v < 0 {
		return reasonOf(v), true
	}
	return "", false
}
