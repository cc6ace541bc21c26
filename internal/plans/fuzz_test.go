package plans

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// FuzzParseFile: any plans file either fails with a "name:line:" error or
// yields a catalog whose ids and limits are all valid.
func FuzzParseFile(f *testing.F) {
	f.Add("plans:\n  - {id: 1, name: starter, limits: {messages: 5000}}\ntenants:\n  - {id: 1, plan: 1}\n")
	f.Add("plans: [\n")
	f.Add("defaults:\n  limits: {messages: -1}\n")
	f.Add("tenants:\n  - {id: \"1*\", plan: 1}\n")
	if demo, err := os.ReadFile("../demo/plans.yaml"); err == nil {
		f.Add(string(demo))
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data string) {
		src, err := ParseFile([]byte(data), "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		cat, err := src.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range cat.Tenants() {
			id, planID := row.ID, row.Plan
			if usage.ValidateID(usage.TenantID, id) != nil {
				t.Fatalf("tenant id %q accepted", id)
			}
			if _, ok := cat.Plans[planID]; planID != "" && !ok {
				t.Fatalf("tenant %q on unknown plan %q", id, planID)
			}
		}
		for _, p := range cat.Plans {
			for mt, l := range p.Limits {
				if l <= 0 || usage.ValidateMetricType(mt) != nil {
					t.Fatalf("plan %q limit %q = %d", p.ID, mt, l)
				}
			}
		}
	})
}
