package billing

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// changingUsage names, as the mirror does, the tenants changed since its
// last snapshot.
type changingUsage struct {
	staticUsage
	seq     uint64
	changed []string
}

func (c *changingUsage) set(id string, counters usage.Counters) {
	c.tenants[id] = counters
	c.changed = append(c.changed, id)
}

func (c *changingUsage) ReadUsage(ctx context.Context, p usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	snap, err := c.staticUsage.ReadUsage(ctx, p, periodID)
	if err != nil {
		return nil, err
	}
	snap.Base, snap.Seq, snap.Changed = c.seq, usage.NextSeq(), c.changed
	c.seq, c.changed = snap.Seq, nil
	return snap, nil
}

// TestJoinFollowsChanges: a read after a usage change, a plan change or
// none updates the last join in place, names the tenants it changed, and
// equals a join from scratch of the same data.
func TestJoinFollowsChanges(t *testing.T) {
	t.Parallel()
	store := &changingUsage{staticUsage: *usageState()}
	src := &switchablePlans{cat: catalog()}
	svc := newService(store, src)
	last := svc.testReport()
	if last.Base != 0 {
		t.Fatalf("first join has base %d, want a full join", last.Base)
	}
	moved := catalog()
	setPlan(moved, "3", "1")
	for _, tc := range []struct {
		name    string
		change  func()
		changed []string
	}{
		{"nothing", func() {}, nil},
		{"usage", func() { store.set("1", usage.CountersOf(map[string]int64{"messages": 4900})) }, []string{"1"}},
		{"plan", func() { src.cat = moved }, []string{"3"}},
	} {
		tc.change()
		r := svc.testReport()
		if r.Base != last.Seq {
			t.Fatalf("%s changed: base %d, want the last join %d", tc.name, r.Base, last.Seq)
		}
		if !slices.Equal(r.Changed, tc.changed) {
			t.Errorf("%s changed: tenants %v changed, want %v", tc.name, r.Changed, tc.changed)
		}
		fresh := newService(&staticUsage{tenants: maps.Clone(store.tenants)}, &switchablePlans{cat: src.cat}).testReport()
		if !reflect.DeepEqual(r.Tenants, fresh.Tenants) || !reflect.DeepEqual(r.PerPlan, fresh.PerPlan) ||
			!reflect.DeepEqual(r.OverThreshold, fresh.OverThreshold) {
			t.Errorf("%s changed: the join differs from a join from scratch", tc.name)
		}
		last = r
	}
}
