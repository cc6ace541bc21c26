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
	// ends[c] is the index after chunk c; nil while every chunk but the
	// last holds chunkLen tenants, and the last at most that.
	ends []int
	n    int
}

// status is a tenant's status and its standing.
type status struct {
	TenantStatus
	rank rankKey
}

// chunkShift sizes the chunks: small, since changes land at random. A
// join that adds tenants to a chunk splits it past maxChunk.
const (
	chunkShift = 4
	chunkLen   = 1 << chunkShift
	maxChunk   = 2 * chunkLen
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

// statusesOf returns statuses over chunks, none of them empty.
func statusesOf(chunks [][]status) Statuses {
	s := Statuses{chunks: chunks}
	uniform := true
	for c, chunk := range chunks {
		s.n += len(chunk)
		uniform = uniform && (len(chunk) == chunkLen || c == len(chunks)-1 && len(chunk) <= chunkLen)
	}
	if !uniform {
		s.ends = make([]int, len(chunks))
		end := 0
		for c, chunk := range chunks {
			end += len(chunk)
			s.ends[c] = end
		}
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

func (s Statuses) at(i int) *status {
	c, k := s.locate(i)
	return &s.chunks[c][k]
}

// locate returns the chunk of index i and i's place in it.
func (s Statuses) locate(i int) (c, k int) {
	if s.ends == nil {
		return i >> chunkShift, i & (chunkLen - 1)
	}
	c = sort.Search(len(s.ends), func(c int) bool { return s.ends[c] > i })
	return c, i - s.start(c)
}

// start returns the index of chunk c's first tenant.
func (s Statuses) start(c int) int {
	switch {
	case c == 0:
		return 0
	case s.ends == nil:
		return c << chunkShift
	}
	return s.ends[c-1]
}

// All yields each tenant's index and status in order.
func (s Statuses) All() iter.Seq2[int, *TenantStatus] { return s.Range(0, s.n) }

// Range yields tenants lo to hi-1 and their indexes, in order.
func (s Statuses) Range(lo, hi int) iter.Seq2[int, *TenantStatus] {
	return func(yield func(int, *TenantStatus) bool) {
		for cur, i := s.cursor(lo), lo; i < hi; i++ {
			if !yield(i, &cur.next().TenantStatus) {
				return
			}
		}
	}
}

// cursor walks statuses in order, one chunk after another.
type cursor struct {
	chunks [][]status
	c, k   int
}

// cursor returns a cursor whose next status is tenant i's.
func (s Statuses) cursor(i int) *cursor {
	if i >= s.n {
		return &cursor{chunks: s.chunks, c: len(s.chunks)}
	}
	c, k := s.locate(i)
	return &cursor{chunks: s.chunks, c: c, k: k}
}

// next returns the next status; the caller stops at the last.
func (cur *cursor) next() *status {
	for cur.k == len(cur.chunks[cur.c]) {
		cur.c, cur.k = cur.c+1, 0
	}
	cur.k++
	return &cur.chunks[cur.c][cur.k-1]
}

// set stores t and its standing at i, which must be a chunk of s's own.
func (s Statuses) set(i int, t TenantStatus) {
	st := s.at(i)
	st.TenantStatus = t
	st.rank = st.rankKey()
}

// Search returns where tenant id is or would be.
func (s Statuses) Search(id string) int {
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
	out := Statuses{n: a.n + b.n}
	out.chunks = make([][]status, (out.n+chunkLen-1)>>chunkShift)
	type place struct{ c, k int }
	var pa, pb place
	take := func(s Statuses, p *place) status {
		st := s.chunks[p.c][p.k]
		if p.k++; p.k == len(s.chunks[p.c]) {
			s.chunks[p.c] = nil
			p.c, p.k = p.c+1, 0
		}
		return st
	}
	for w := range out.n {
		if w&(chunkLen-1) == 0 {
			out.chunks[w>>chunkShift] = make([]status, min(chunkLen, out.n-w))
		}
		if pb.c == len(b.chunks) || pa.c < len(a.chunks) && a.chunks[pa.c][pa.k].ID < b.chunks[pb.c][pb.k].ID {
			*out.at(w) = take(a, &pa)
		} else {
			*out.at(w) = take(b, &pb)
		}
	}
	return out
}
