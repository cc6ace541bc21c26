package collector

import (
	"cmp"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	reasonUnsentBytes = "unsent_bytes"
	reasonWriteFailed = "write_failed"
)

var (
	abandonedDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "exporter", "scrapes_abandoned_total"),
		"Scrapes whose body was rendered but not sent whole, by reason: unsent_bytes (given up to stay within --web.max-unsent-bytes), write_failed.",
		[]string{"reason"}, nil)
	unsentDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "exporter", "unsent_bytes"),
		"Bytes of rendered bodies held for responses being written, a part shared by several counted once.", nil, nil)
)

// unsent bounds the bytes held for responses being written: over max, the
// longest waiting are given up.
type unsent struct {
	max int64 // 0: no bound

	mu        sync.Mutex
	held      int64
	refs      map[*byte]int
	writing   map[*response]struct{}
	tick      uint64
	abandoned map[string]uint64
}

type response struct {
	parts    [][]byte
	progress uint64 // the tick of its last write
	giveUp   func()
	gaveUp   bool
}

func newUnsent(limit int64) *unsent {
	return &unsent{max: limit, refs: map[*byte]int{}, writing: map[*response]struct{}{},
		abandoned: map[string]uint64{reasonUnsentBytes: 0, reasonWriteFailed: 0}}
}

// admit holds parts for a response about to be written.
func (u *unsent) admit(parts [][]byte, giveUp func()) *response {
	r := &response{parts: parts, giveUp: giveUp}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hold(parts, 1)
	for u.max > 0 && u.held > u.max && len(u.writing) > 0 {
		oldest := slices.MinFunc(slices.Collect(maps.Keys(u.writing)), func(a, b *response) int { return cmp.Compare(a.progress, b.progress) })
		u.drop(oldest)
		oldest.gaveUp = true
		// Under mu: its connection serves no other request yet.
		oldest.giveUp()
		u.abandoned[reasonUnsentBytes]++
	}
	u.tick++
	r.progress = u.tick
	u.writing[r] = struct{}{}
	return r
}

// wrote records r's progress and reports whether r is still being sent.
func (u *unsent) wrote(r *response) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r.gaveUp {
		return false
	}
	u.tick++
	r.progress = u.tick
	return true
}

// done releases r; failed: its body was not sent whole.
func (u *unsent) done(r *response, failed bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r.gaveUp {
		return
	}
	u.drop(r)
	if failed {
		u.abandoned[reasonWriteFailed]++
	}
}

func (u *unsent) drop(r *response) {
	delete(u.writing, r)
	u.hold(r.parts, -1)
}

// hold adds delta references to each part.
func (u *unsent) hold(parts [][]byte, delta int) {
	for _, p := range parts {
		if cap(p) == 0 {
			continue
		}
		key := &p[:1][0]
		n := u.refs[key] + delta
		u.refs[key] = n
		switch n {
		case 0:
			delete(u.refs, key)
			u.held -= int64(cap(p))
		case delta:
			u.held += int64(cap(p))
		}
	}
}

func (u *unsent) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(u, ch) }

func (u *unsent) Collect(ch chan<- prometheus.Metric) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for reason, n := range u.abandoned {
		ch <- prometheus.MustNewConstMetric(abandonedDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- gauge(unsentDesc, float64(u.held))
}
