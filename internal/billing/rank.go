package billing

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
)

// rankKey is what of a status its rank needs; only the projection
// depends on the time.
type rankKey struct {
	pressure float64 // the highest limit percentage, -1: none
	// The messages used, complemented when an alert fires whatever the
	// time, so that every tenant's key is two words.
	messagesOrAlerting int64
}

func (t *TenantStatus) rankKey() rankKey {
	k := rankKey{pressure: -1}
	messages, _ := t.Usage.Value(messagesType)
	alerting := false
	t.EachLimit(func(lt string, _ int64, pct float64) {
		k.pressure = max(k.pressure, pct)
		switch {
		case slices.Contains(SeatLimitTypes, lt):
			alerting = alerting || pct > LimitPercent
		case pct >= LimitPercent:
			alerting = alerting || slices.Contains(ConsumptionLimitTypes, lt)
		case lt == messagesType:
			alerting = alerting || pct > NearLimitPercent
		}
	})
	// BillingTenantWithoutPlan fires for a tenant on the defaults.
	k.messagesOrAlerting = messages
	if t.LimitsKnown && (t.UsingDefaults || alerting) {
		k.messagesOrAlerting = ^messages
	}
	return k
}

func (k rankKey) messages() int64 {
	if k.messagesOrAlerting < 0 {
		return ^k.messagesOrAlerting
	}
	return k.messagesOrAlerting
}

// alerting reports whether an alert fires whatever the time.
func (k rankKey) alerting() bool { return k.messagesOrAlerting < 0 }

// alertingAt reports whether a shipped tenant alert fires at at, for the
// status of terms whose rank key k is.
func (k rankKey) alertingAt(terms *Terms, p period.Period, at time.Time) bool {
	if k.alerting() || terms.messagesLimit == 0 {
		return k.alerting()
	}
	projected, ok := Projected(k.messages(), p, at)
	return ok && projected > float64(terms.messagesLimit)
}

// MostPressed returns up to n tenants for --metrics.max-tenants, alerting
// first, then by pressure and messages; n <= 0 keeps them all, in id order.
func (r *Report) MostPressed(n int) Statuses {
	return mostPressed(r.Tenants, n, r.Period, r.At)
}

// MostPressed ranks tenants as Report.MostPressed does.
func MostPressed(tenants []TenantStatus, n int, p period.Period, at time.Time) []TenantStatus {
	top := mostPressed(StatusesOf(tenants), n, p, at)
	out := make([]TenantStatus, 0, top.Len())
	for _, t := range top.All() {
		out = append(out, *t)
	}
	return out
}

func mostPressed(tenants Statuses, n int, p period.Period, at time.Time) Statuses {
	if n <= 0 || n >= tenants.Len() {
		return tenants
	}
	cmpRanked := func(a, b ranked) int {
		if a.alerting != b.alerting {
			if a.alerting {
				return -1
			}
			return 1
		}
		if c := cmp.Or(cmp.Compare(b.pressure, a.pressure), cmp.Compare(b.messages, a.messages)); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	}
	// Each core keeps the n first of its part, which hold the n first of all.
	parts := splitEven(tenants.Len(), runtime.GOMAXPROCS(0))
	tops := make([][]ranked, len(parts)-1)
	eachPart(parts, func(lo, hi int) {
		cur := tenants.cursor(lo)
		tops[slices.Index(parts, lo)] = topN(hi-lo, min(n, hi-lo), func(i int) ranked {
			st := cur.next()
			return ranked{lo + i, st.ID, st.rank.alertingAt(st.Terms, p, at), st.rank.pressure, st.rank.messages()}
		}, cmpRanked)
	})
	top := slices.Concat(tops...)
	slices.SortFunc(top, cmpRanked)
	out := newStatuses(n)
	for k := range n {
		*out.at(k) = *tenants.at(top[k].i)
	}
	return out
}

// ranked is a tenant's place in MostPressed's order.
type ranked struct {
	i        int
	id       string
	alerting bool
	pressure float64
	messages int64
}

// topN returns the n first (n <= total) of rankOf(0) .. rankOf(total-1) in
// the order of cmp, sorted; it calls rankOf once for each i, in order. A
// heap of the n best, rooted at the worst of them, holds n items and costs
// one comparison for each tenant left out.
func topN(total, n int, rankOf func(i int) ranked, cmp func(a, b ranked) int) []ranked {
	h := make([]ranked, n)
	for i := range h {
		h[i] = rankOf(i)
	}
	// worse(i, j): h[i] comes after h[j]; the root is the worst.
	worse := func(i, j int) bool { return cmp(h[i], h[j]) > 0 }
	down := func(i int) {
		for {
			w := i
			if l := 2*i + 1; l < n && worse(l, w) {
				w = l
			}
			if r := 2*i + 2; r < n && worse(r, w) {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := n/2 - 1; i >= 0; i-- {
		down(i)
	}
	for i := n; i < total; i++ {
		if r := rankOf(i); cmp(r, h[0]) < 0 {
			h[0] = r
			down(0)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}
