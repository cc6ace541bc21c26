package billing

import (
	"cmp"
	"runtime"
	"slices"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
)

// SeatLimitTypes are the limit types that count seats in use (current
// counts, not monthly consumption): a tenant at its limit is using what it
// pays for, only one over it is an event. messages and storage are
// consumption: reaching the limit is the event, the backend refuses more.
// The shipped alerts (mixin/) make the same distinction.
var SeatLimitTypes = []string{"users", "whatsappSessions"}

// The thresholds of the shipped tenant alerts at their defaults (mixin/
// config.libsonnet): near limit above 80 % of messages, limit reached at
// 100 % of a consumption limit or over 100 % of a seat limit, a projection
// only after the first day of the period.
const (
	alertNearLimitPct         = 80
	alertReachedPct           = 100
	alertProjectionMinElapsed = 24 * time.Hour
)

// Pressure is how close a tenant is to its limits: its highest percentage
// of any limit, or -1 when it has no limit (unlimited or limits unknown).
func (t *TenantStatus) Pressure() float64 {
	top := -1.0
	t.EachLimit(func(_ string, _ int64, pct float64) { top = max(top, pct) })
	return top
}

// Alerting reports whether one of the shipped tenant alerts would fire for
// the tenant (once its `for` has passed) at time at of period p:
// BillingUsageNearLimit, BillingLimitReached (consumption at or over its
// limit, seats over theirs), BillingTenantWithoutPlan or
// BillingUsagePredictedToExceed.
func (t *TenantStatus) Alerting(p period.Period, at time.Time) bool {
	alerting, _ := t.standing(p, at)
	return alerting
}

// standing is Alerting and Pressure in one walk of the limits: ranking
// the tenants for --metrics.max-tenants asks both of every tenant on every
// scrape, and each percentage is computed from the tenant's counters.
func (t *TenantStatus) standing(p period.Period, at time.Time) (alerting bool, pressure float64) {
	pressure = -1
	t.EachLimit(func(limitType string, limit int64, pct float64) {
		pressure = max(pressure, pct)
		switch {
		case slices.Contains(SeatLimitTypes, limitType):
			alerting = alerting || pct > alertReachedPct
		case pct >= alertReachedPct:
			alerting = true
		case limitType == messagesType:
			// EachLimit passes readable usage only.
			used, _ := t.Used(messagesType)
			alerting = alerting || pct > alertNearLimitPct || projectedOver(used, limit, p, at)
		}
	})
	// No limit is walked when limits are unknown; on the defaults, the
	// tenant without a plan alert fires whatever the figures.
	return t.LimitsKnown && (t.UsingDefaults || alerting), pressure
}

// projectedOver reports whether used, at its pace so far in p, passes limit
// by the end of p; never in the period's first day (too little to go on).
func projectedOver(used, limit int64, p period.Period, at time.Time) bool {
	elapsed := at.Sub(p.Start)
	if elapsed <= alertProjectionMinElapsed {
		return false
	}
	return float64(used)*float64(p.End.Sub(p.Start))/float64(elapsed) > float64(limit)
}

// MostPressed returns up to n tenants: first those a shipped alert would
// fire for (Alerting at time at of period p), then the others; within each
// group those closest to (or furthest past) a limit first, then by messages
// used. It is how a cap on exported tenants keeps the ones people need to
// see: a tenant at its one allowed session does not push out one at 85 %
// of its messages. n <= 0 or n >= len(tenants) returns tenants unchanged.
func MostPressed(tenants []TenantStatus, n int, p period.Period, at time.Time) []TenantStatus {
	if n <= 0 || n >= len(tenants) {
		return tenants
	}
	rankOf := func(i int) ranked {
		messages, _ := tenants[i].Used(messagesType)
		alerting, pressure := tenants[i].standing(p, at)
		return ranked{i, alerting, pressure, messages}
	}
	cmpRanked := func(a, b ranked) int {
		if a.alerting != b.alerting {
			if a.alerting {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.pressure, a.pressure); c != 0 {
			return c
		}
		if c := cmp.Compare(b.messages, a.messages); c != 0 {
			return c
		}
		return cmp.Compare(tenants[a.i].ID, tenants[b.i].ID)
	}
	// Each core ranks a part of the tenants and keeps its n first; the
	// n first of those are the n first of all.
	parts := splitEven(len(tenants), runtime.GOMAXPROCS(0))
	tops := make([][]ranked, len(parts)-1)
	eachPart(parts, func(lo, hi int) {
		tops[slices.Index(parts, lo)] = topN(hi-lo, min(n, hi-lo), func(i int) ranked { return rankOf(lo + i) }, cmpRanked)
	})
	top := slices.Concat(tops...)
	slices.SortFunc(top, cmpRanked)
	out := make([]TenantStatus, n)
	for k := range out {
		out[k] = tenants[top[k].i]
	}
	return out
}

// ranked is a tenant's place in MostPressed's order.
type ranked struct {
	i        int
	alerting bool
	pressure float64
	messages int64
}

// topN returns the n first (n <= total) of the items rankOf(0) ..
// rankOf(total-1) in the order of cmp (a total order), sorted. It keeps the
// n best seen so far in a heap whose root is the worst of them, so that the
// many tenants that do not make the cut cost one comparison each (with a
// cap far below the number of tenants, sorting them all was most of the
// selection), and holds n items, not total: at a million tenants a list of
// them all was 32 MB per scrape.
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
