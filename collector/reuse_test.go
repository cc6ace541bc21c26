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

// TestWriteTenantsReuse: a rendering copies exactly the chunks in whose id
// range nothing changed, came or went, has a rendering from scratch's
// series, and cuts a grown chunk anew.
func TestWriteTenantsReuse(t *testing.T) {
	t.Parallel()
	limits := plans.Limits{"messages": 100, "users": 5}
	status := func(id string, c usage.Counters, plan string) billing.TenantStatus {
		return billing.TenantStatus{ID: id, Usage: c, Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: plan, PlanName: "plan " + plan, Limits: limits}, "")}
	}
	id := func(i int) string { return fmt.Sprintf("t%05d", i) }
	n := 3*chunkTenants + 7
	first := make([]billing.TenantStatus, n)
	for i := range first {
		first[i] = status(id(i), usage.CountersOf(map[string]int64{"messages": int64(i), "users": int64(i % 7), "storage": 3}), "1")
	}
	for _, tc := range []struct {
		name    string
		changed []int    // tenants whose status changes
		gone    []int    // tenants that go
		added   []string // tenants that come
		dirty   []int    // the first rendering's chunks rendered again
		chunks  int      // in the second rendering
	}{
		{name: "nothing changed", chunks: 4},
		{name: "usage and plans changed", changed: []int{0, 5, chunkTenants, n - 1}, dirty: []int{0, 1, 3}, chunks: 4},
		{name: "one chunk changed", changed: []int{chunkTenants + 1}, dirty: []int{1}, chunks: 4},
		{name: "a tenant came", added: []string{id(chunkTenants+3) + "a"}, dirty: []int{1}, chunks: 4},
		{name: "a tenant went", gone: []int{2*chunkTenants + 9}, dirty: []int{2}, chunks: 4},
		{name: "tenants before the first and after the last", added: []string{"a", "z"}, dirty: []int{0, 3}, chunks: 4},
		{name: "a chunk's every tenant went", gone: seq(chunkTenants, 2*chunkTenants), dirty: []int{1}, chunks: 3},
		{name: "a chunk grew past twice its size", added: idsAfter(id(5), 2*chunkTenants), dirty: []int{0}, chunks: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			second := slices.Clone(first)
			var changed []string
			for _, i := range tc.changed {
				second[i] = status(second[i].ID, usage.CountersOf(map[string]int64{"messages": 99}), "2")
				changed = append(changed, id(i))
			}
			for _, i := range tc.gone {
				changed = append(changed, id(i))
			}
			second = slices.DeleteFunc(second, func(st billing.TenantStatus) bool {
				return slices.ContainsFunc(tc.gone, func(i int) bool { return id(i) == st.ID })
			})
			for _, a := range tc.added {
				second = append(second, status(a, usage.CountersOf(map[string]int64{"messages": 1}), "1"))
				changed = append(changed, a)
			}
			slices.SortFunc(second, func(a, b billing.TenantStatus) int { return strings.Compare(a.ID, b.ID) })
			slices.Sort(changed)
			for _, gz := range []bool{false, true} {
				prev := writeTenants(&stream{gzip: gz}, billing.StatusesOf(first), nil, nil)
				out := &stream{gzip: gz}
				text := writeTenants(out, billing.StatusesOf(second), prev, changed)
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
					if len(text.families[fi]) != tc.chunks {
						t.Fatalf("gzip %v: family %d in %d chunks, want %d", gz, fi, len(text.families[fi]), tc.chunks)
					}
					var copied []int
					for _, c := range text.families[fi] {
						for pi, was := range prev.families[fi] {
							if gz && &c.deflated[0] == &was.deflated[0] || !gz && &c.text[0] == &was.text[0] {
								copied = append(copied, pi)
							}
						}
					}
					var want []int
					for pi := range prev.families[fi] {
						if !slices.Contains(tc.dirty, pi) {
							want = append(want, pi)
						}
					}
					if !slices.Equal(copied, want) {
						t.Errorf("gzip %v: family %d copies the last rendering's chunks %v, want %v", gz, fi, copied, want)
					}
				}
			}
		})
	}
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// idsAfter returns n ids that sort right after id.
func idsAfter(id string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%04d", id, i))
	}
	return out
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
