package postgres

import (
	"strconv"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/plans"
)

// TestRecorderBoundsRowClasses: rows of a few kinds are kept as one kind
// each, however many rows; past maxRowClasses kinds (a bad plan name per
// row) nothing is kept, so that the next load builds as always.
func TestRecorderBoundsRowClasses(t *testing.T) {
	cat := plans.NewCatalog()
	tests := []struct {
		name        string
		rows        int
		kinds       int // distinct plan names among the rows
		wantKept    bool
		wantClasses int
	}{
		{"a few kinds", 100000, 3, true, 3},
		{"as many kinds as allowed", maxRowClasses, maxRowClasses, true, maxRowClasses},
		{"one kind too many", maxRowClasses + 1, maxRowClasses + 1, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newRecorder(0)
			limits := []int64{10}
			for i := range tt.rows {
				r := row{tenantID: strconv.Itoa(i), planID: "1", reason: reasonInvalidPlanName}
				rc.add(r, "name "+strconv.Itoa(i%tt.kinds), limits)
			}
			res := rc.result([]string{"tenant_id"}, cat)
			if (res != nil) != tt.wantKept {
				t.Fatalf("kept %v, want %v", res != nil, tt.wantKept)
			}
			if res == nil {
				return
			}
			if len(res.classes) != tt.wantClasses || len(res.tenants) != tt.rows {
				t.Errorf("%d kinds and %d rows kept, want %d and %d", len(res.classes), len(res.tenants), tt.wantClasses, tt.rows)
			}
			for _, n := range []int{0, tt.rows / 2, tt.rows - 1} {
				r := row{tenantID: strconv.Itoa(n), planID: "1", reason: reasonInvalidPlanName}
				if !res.same(n, r, "name "+strconv.Itoa(n%tt.kinds), limits) {
					t.Errorf("row %d not recognised", n)
				}
				if res.same(n, r, "name "+strconv.Itoa(n%tt.kinds), []int64{11}) {
					t.Errorf("row %d with another limit recognised", n)
				}
			}
		})
	}
}
