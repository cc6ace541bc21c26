package billing

import (
	"fmt"
	"testing"
)

// TestStatuses: indexes, order and search across chunk boundaries.
func TestStatuses(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, chunkLen - 1, chunkLen, chunkLen + 1, 3*chunkLen + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			tenants := make([]TenantStatus, n)
			for i := range tenants {
				tenants[i] = TenantStatus{ID: fmt.Sprintf("t%04d", 2*i), Terms: &Terms{}}
			}
			s := StatusesOf(tenants)
			if s.Len() != n {
				t.Fatalf("Len = %d, want %d", s.Len(), n)
			}
			next := 0
			for i, st := range s.All() {
				if i != next || st != s.At(i) || st.ID != tenants[i].ID {
					t.Fatalf("All yielded %d %s, want %d %s", i, st.ID, next, tenants[next].ID)
				}
				next++
			}
			if next != n {
				t.Errorf("All yielded %d, want %d", next, n)
			}
			for i := range n {
				if got := s.Search(tenants[i].ID); got != i {
					t.Errorf("search(%s) = %d, want %d", tenants[i].ID, got, i)
				}
				if got := s.Search(fmt.Sprintf("t%04d", 2*i+1)); got != i+1 {
					t.Errorf("search between %d and %d = %d", i, i+1, got)
				}
			}
			if got := s.Search(""); got != 0 {
				t.Errorf("search before all = %d", got)
			}
		})
	}
}

// TestMergeStatuses: two sorted sets of statuses merge into one sorted set
// holding each status as it was, and the merge drops every chunk it read.
func TestMergeStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ a, b int }{
		{0, 0}, {0, 5}, {5, 0}, {1, 1}, {chunkLen, chunkLen}, {chunkLen + 1, 2*chunkLen + 1}, {100, 7}, {3, 90},
	} {
		t.Run(fmt.Sprintf("%d_and_%d", tc.a, tc.b), func(t *testing.T) {
			t.Parallel()
			statuses := func(n, parity int) Statuses {
				tenants := make([]TenantStatus, n)
				for i := range tenants {
					// Ids interleave a and b where both have some.
					tenants[i] = TenantStatus{ID: fmt.Sprintf("t%04d", 2*i+parity), Terms: &Terms{}}
				}
				return StatusesOf(tenants)
			}
			a, b := statuses(tc.a, 0), statuses(tc.b, 1)
			want := map[string]status{}
			for _, s := range []Statuses{a, b} {
				for i := range s.Len() {
					want[s.At(i).ID] = *s.at(i)
				}
			}
			got := mergeStatuses(a, b)
			if got.Len() != tc.a+tc.b {
				t.Fatalf("Len = %d, want %d", got.Len(), tc.a+tc.b)
			}
			for i := range got.Len() {
				st := *got.at(i)
				if i > 0 && got.At(i-1).ID >= st.ID {
					t.Fatalf("%s after %s", st.ID, got.At(i-1).ID)
				}
				if st != want[st.ID] {
					t.Errorf("%s = %+v, want %+v", st.ID, st, want[st.ID])
				}
			}
			if tc.a == 0 || tc.b == 0 {
				return // one side returned as it is
			}
			for _, s := range []Statuses{a, b} {
				for c, chunk := range s.chunks {
					if chunk != nil {
						t.Errorf("chunk %d of an input is still held", c)
					}
				}
			}
		})
	}
}

// TestStatusesOfUnevenChunks: chunks a join grew, shrank or split are
// indexed, searched and walked like even ones.
func TestStatusesOfUnevenChunks(t *testing.T) {
	t.Parallel()
	for _, sizes := range [][]int{{3}, {chunkLen, chunkLen, 5}, {chunkLen, chunkLen + 3}, {3, chunkLen, 1, maxChunk, 7}, {maxChunk, maxChunk}, {1, 1, 1}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			t.Parallel()
			var chunks [][]status
			n := 0
			for _, size := range sizes {
				chunk := make([]status, size)
				for k := range chunk {
					chunk[k].TenantStatus = TenantStatus{ID: fmt.Sprintf("t%04d", 2*n), Terms: &Terms{}}
					n++
				}
				chunks = append(chunks, chunk)
			}
			s := statusesOf(chunks)
			if s.Len() != n {
				t.Fatalf("Len = %d, want %d", s.Len(), n)
			}
			for i := range n {
				want := fmt.Sprintf("t%04d", 2*i)
				if got := s.At(i).ID; got != want {
					t.Fatalf("At(%d) = %s, want %s", i, got, want)
				}
				if got := s.Search(want); got != i {
					t.Errorf("search(%s) = %d, want %d", want, got, i)
				}
				if got := s.Search(fmt.Sprintf("t%04d", 2*i+1)); got != i+1 {
					t.Errorf("search between %d and %d = %d", i, i+1, got)
				}
			}
			for lo := 0; lo <= n; lo++ {
				for _, hi := range []int{lo, min(lo+1, n), min(lo+chunkLen+3, n), n} {
					next := lo
					for i, st := range s.Range(lo, hi) {
						if i != next || st != s.At(i) {
							t.Fatalf("Range(%d, %d) yielded %d %s, want %d", lo, hi, i, st.ID, next)
						}
						next++
					}
					if next != hi {
						t.Fatalf("Range(%d, %d) stopped at %d", lo, hi, next)
					}
				}
			}
		})
	}
}
