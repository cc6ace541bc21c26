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
				if got := s.search(tenants[i].ID); got != i {
					t.Errorf("search(%s) = %d, want %d", tenants[i].ID, got, i)
				}
				if got := s.search(fmt.Sprintf("t%04d", 2*i+1)); got != i+1 {
					t.Errorf("search between %d and %d = %d", i, i+1, got)
				}
			}
			if got := s.search(""); got != 0 {
				t.Errorf("search before all = %d", got)
			}
		})
	}
}
