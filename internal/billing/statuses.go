package billing

import (
	"iter"
	"sort"
)

// Statuses are a report's tenants, sorted by id, in chunks that a join
// shares with the join it updates, copying only the chunks it changes.
// Never modified.
type Statuses struct {
	chunks [][]status
	n      int
}

// status is a tenant's status and its standing.
type status struct {
	TenantStatus
	rank rankKey
}

// chunkShift sizes the chunks: small, since changes land at random.
const (
	chunkShift = 4
	chunkLen   = 1 << chunkShift
)

// newStatuses returns n zero statuses, each chunk an allocation of its own
// so that no chunk a later join replaces keeps the others alive.
func newStatuses(n int) Statuses {
	s := Statuses{chunks: make([][]status, (n+chunkLen-1)>>chunkShift), n: n}
	for c := range s.chunks {
		s.chunks[c] = make([]status, min(chunkLen, n-c<<chunkShift))
	}
	return s
}

// StatusesOf returns tenants, sorted by id, as Statuses.
func StatusesOf(tenants []TenantStatus) Statuses {
	s := newStatuses(len(tenants))
	for i := range tenants {
		s.set(i, tenants[i])
	}
	return s
}

// Len returns the number of tenants.
func (s Statuses) Len() int { return s.n }

// At returns tenant i's status, which the caller must not modify.
func (s Statuses) At(i int) *TenantStatus { return &s.at(i).TenantStatus }

func (s Statuses) at(i int) *status { return &s.chunks[i>>chunkShift][i&(chunkLen-1)] }

// All yields each tenant's index and status in order.
func (s Statuses) All() iter.Seq2[int, *TenantStatus] {
	return func(yield func(int, *TenantStatus) bool) {
		for c, chunk := range s.chunks {
			for k := range chunk {
				if !yield(c<<chunkShift+k, &chunk[k].TenantStatus) {
					return
				}
			}
		}
	}
}

// set stores t and its standing at i, which must be a chunk of s's own.
func (s Statuses) set(i int, t TenantStatus) {
	st := s.at(i)
	st.TenantStatus = t
	st.rank = st.rankKey()
}

// search returns where tenant id is or would be.
func (s Statuses) search(id string) int {
	return sort.Search(s.n, func(i int) bool { return s.At(i).ID >= id })
}

// mergeStatuses merges a and b, sorted by id and apart, into one and
// consumes them: a chunk is dropped once copied, so that the tenants are
// held about once while merged.
func mergeStatuses(a, b Statuses) Statuses {
	switch {
	case a.Len() == 0:
		return b
	case b.Len() == 0:
		return a
	}
	out := Statuses{chunks: make([][]status, (a.n+b.n+chunkLen-1)>>chunkShift), n: a.n + b.n}
	i, j := 0, 0
	take := func(s Statuses, k *int) *status {
		st := s.at(*k)
		if *k++; *k&(chunkLen-1) == 0 || *k == s.n {
			s.chunks[(*k-1)>>chunkShift] = nil
		}
		return st
	}
	for w := range out.n {
		if w&(chunkLen-1) == 0 {
			out.chunks[w>>chunkShift] = make([]status, min(chunkLen, out.n-w))
		}
		var st *status
		if j == b.n || i < a.n && a.At(i).ID < b.At(j).ID {
			st = take(a, &i)
		} else {
			st = take(b, &j)
		}
		*out.at(w) = *st
	}
	return out
}
