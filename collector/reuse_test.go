package collector

import (
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestWriteTenantsReuse: a rendering that copies the chunks a change set
// calls clean from the last one has the series a rendering from scratch
// has, with each family's samples together, and copies exactly those chunks.
func TestWriteTenantsReuse(t *testing.T) {
	t.Parallel()
	limits := plans.Limits{"messages": 100, "users": 5}
	status := func(id string, c usage.Counters, plan string) billing.TenantStatus {
		return billing.TenantStatus{ID: id, Usage: c, Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: plan, PlanName: "plan " + plan, Limits: limits}, "")}
	}
	n := 2*chunkTenants + 7
	first := make([]billing.TenantStatus, n)
	for i := range first {
		first[i] = status(fmt.Sprint(i), usage.CountersOf(map[string]int64{"messages": int64(i), "users": int64(i % 7), "storage": 3}), "1")
	}
	for _, tc := range []struct {
		name    string
		changed []int
	}{
		{"nothing changed", nil},
		{"usage and plans changed", []int{0, 5, chunkTenants, n - 1}},
		{"one chunk changed", []int{chunkTenants + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			second := slices.Clone(first)
			for _, i := range tc.changed {
				second[i] = status(second[i].ID, usage.CountersOf(map[string]int64{"messages": 99}), "2")
			}
			dirty := func(lo, hi int) bool {
				return slices.ContainsFunc(tc.changed, func(i int) bool { return i >= lo && i < hi })
			}
			for _, gz := range []bool{false, true} {
				prev := writeTenants(&stream{gzip: gz}, billing.StatusesOf(first), nil, nil)
				out := &stream{gzip: gz}
				text := writeTenants(out, billing.StatusesOf(second), prev, dirty)
				got := streamBody(out)
				body := got.Bytes()
				if gz {
					zr, err := gzip.NewReader(got)
					if err != nil {
						t.Fatal(err)
					}
					if body, err = io.ReadAll(zr); err != nil {
						t.Fatal(err)
					}
				}
				want := renderAll(t, second, false).Bytes()
				if g, w := familiesOf(body), familiesOf(want); !slices.Equal(g, w) {
					t.Errorf("gzip %v: families in order %v, want %v", gz, g, w)
				}
				if g, w := sortedLines(body), sortedLines(want); !slices.Equal(g, w) {
					t.Errorf("gzip %v: the series differ from a rendering from scratch", gz)
				}
				for fi := range tenantFamilies {
					for ci, c := range text.families[fi] {
						was := prev.families[fi][ci]
						shared := gz && &c.deflated[0] == &was.deflated[0] || !gz && &c.text[0] == &was.text[0]
						if want := !dirty(ci*chunkTenants, (ci+1)*chunkTenants); shared != want {
							t.Errorf("gzip %v: family %d, chunk %d: shares the last rendering's bytes: %v, want %v", gz, fi, ci, shared, want)
						}
					}
				}
			}
		})
	}
}

func sortedLines(b []byte) []string {
	lines := strings.Split(string(b), "\n")
	slices.Sort(lines)
	return lines
}

// familiesOf lists the metric names of b's samples in order, each run of
// one name once: a family split in two shows twice.
func familiesOf(b []byte) []string {
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		if len(names) == 0 || names[len(names)-1] != name {
			names = append(names, name)
		}
	}
	return names
}
