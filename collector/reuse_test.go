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

// TestWriteTenantsReuse: a rendering that copies the unchanged tenants'
// lines from the last one has the series a rendering from scratch has,
// with each family's samples together, and copies exactly the tenants
// that are the same.
func TestWriteTenantsReuse(t *testing.T) {
	limits := plans.Limits{"messages": 100, "users": 5}
	status := func(id string, c usage.Counters, plan string) billing.TenantStatus {
		st := billing.TenantStatus{ID: id, Usage: c, Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: plan, PlanName: "plan " + plan, Limits: limits}, "")}
		return st
	}
	n := 2*chunkTenants + 7
	first := make([]billing.TenantStatus, n)
	for i := range first {
		first[i] = status(fmt.Sprint(i), usage.CountersOf(map[string]int64{"messages": int64(i), "users": int64(i % 7), "storage": 3}), "1")
	}
	for _, tc := range []struct {
		name    string
		change  func(ts []billing.TenantStatus) []billing.TenantStatus
		changed []int // tenants not copied
	}{
		{name: "nothing changed", change: func(ts []billing.TenantStatus) []billing.TenantStatus { return ts }},
		{name: "usage and plans changed", change: func(ts []billing.TenantStatus) []billing.TenantStatus {
			ts[0] = status("0", usage.CountersOf(map[string]int64{"messages": 99}), "1")
			ts[chunkTenants] = status(ts[chunkTenants].ID, usage.CountersOf(map[string]int64{"messages": 1}), "1")
			ts[n-1] = status(ts[n-1].ID, ts[n-1].Usage, "2") // same counters, another plan
			// New counters with the same content: not the same.
			ts[5] = status("5", usage.CountersOf(map[string]int64{"messages": 5, "users": 5, "storage": 3}), "1")
			return ts
		}, changed: []int{0, 5, chunkTenants, n - 1}},
		{name: "one chunk changed", change: func(ts []billing.TenantStatus) []billing.TenantStatus {
			ts[chunkTenants+1] = status(ts[chunkTenants+1].ID, usage.CountersOf(map[string]int64{"messages": 1}), "1")
			return ts
		}, changed: []int{chunkTenants + 1}},
		{name: "a tenant more", change: func(ts []billing.TenantStatus) []billing.TenantStatus {
			return append(ts, status("new", usage.CountersOf(map[string]int64{"messages": 1}), "1"))
		}, changed: nil /* every one: the list changed */},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev := writeTenants(&stream{}, first, nil)
			second := tc.change(slices.Clone(first))
			for _, gz := range []bool{false, true} {
				out := &stream{gzip: gz}
				text := writeTenants(out, second, prev)
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
				// Copied tenants have the very bytes of the last rendering.
				copied := len(second) == len(first)
				for fi := range tenantFamilies {
					for i := range second {
						if !copied || slices.Contains(tc.changed, i) {
							continue
						}
						if g, w := tenantLines(text, fi, i), tenantLines(prev, fi, i); g != w {
							t.Errorf("gzip %v: family %d, tenant %d: %q, want the last rendering's %q", gz, fi, i, g, w)
						}
					}
					// A chunk of copied tenants only is the last rendering's bytes.
					for ci, c := range text.families[fi] {
						lo, hi := ci*chunkTenants, (ci+1)*chunkTenants
						want := copied && !slices.ContainsFunc(tc.changed, func(i int) bool { return i >= lo && i < hi })
						if got := copied && &c.text[0] == &prev.families[fi][ci].text[0]; got != want {
							t.Errorf("gzip %v: family %d, chunk %d: shares the last rendering's bytes: %v, want %v", gz, fi, ci, got, want)
						}
					}
				}
			}
		})
	}
}

func tenantLines(tt *tenantText, family, i int) string {
	c := tt.families[family][i/chunkTenants]
	k := i % chunkTenants
	from := int32(0)
	if k > 0 {
		from = c.ends[k-1]
	}
	return string(c.text[from:c.ends[k]])
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
