package testserver

import (
	"fmt"
	"maps"
	"strconv"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// GroupTenants is how many tenants UsageCommands puts in one cluster slot.
const GroupTenants = 40

// UsageCommands is the data set of the Redis read tests: 3000 tenants spread
// over every slot, older periods, a group of tenants in one slot, and every
// kind of bad data.
func UsageCommands() [][]any {
	var cmds [][]any
	for i := range 3000 {
		cmds = append(cmds, []any{"HSET", "usage:" + strconv.Itoa(i) + ":202611",
			"messages", i * 7, "storage", i * 1000, "users", i % 10, "whatsappSessions", i % 3})
		if i%10 == 0 {
			cmds = append(cmds, []any{"HSET", "usage:" + strconv.Itoa(i) + ":202610", "messages", 1})
		}
	}
	for i := range GroupTenants {
		cmds = append(cmds, []any{"HSET", "usage:{grp}" + strconv.Itoa(i) + ":202611", "messages", 100 + i})
	}
	return append(cmds,
		[]any{"HSET", "usage:apicalls:202611", "messages", 10, "apiCalls", 7},
		[]any{"HSET", "usage:bad:202611", "messages", "-3", "storage", "1.5", "users", 2},
		[]any{"HSET", "usage:badfield:202611", "bad\xfffield", 1, "messages", 2},
		[]any{"SET", "usage:wt1:202611", "not a hash"},
		[]any{"RPUSH", "usage:wt2:202611", "x"},
		[]any{"HSET", "usage:x:2026-11", "messages", 1},
		[]any{"HSET", "other:9:202611", "messages", 1},
	)
}

// Seed writes cmds to r in one pipeline.
func (r *Redis) Seed(t testing.TB, cmds [][]any) {
	t.Helper()
	c := r.Conn()
	for _, cmd := range cmds {
		if err := c.Send(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Do(""); err != nil {
		t.Fatal(err)
	}
}

// Seed writes cmds through the cluster-aware client.
func (c *Cluster) Seed(cmds [][]any) {
	for _, cmd := range cmds {
		c.Do(cmd[0].(string), cmd[1:]...)
	}
}

// SameSnapshot reports how got differs from want: keys, skips, tenants.
func SameSnapshot(t testing.TB, what string, got, want *usage.Snapshot) {
	t.Helper()
	if got.Keys != want.Keys {
		t.Errorf("%s: keys = %d, want %d", what, got.Keys, want.Keys)
	}
	if !maps.Equal(got.Skipped, want.Skipped) {
		t.Errorf("%s: skipped = %v, want %v", what, got.Skipped, want.Skipped)
	}
	var missing, extra, wrong []string
	for id, w := range want.Tenants.All() {
		g, ok := got.Tenants.Lookup(id)
		switch {
		case !ok:
			missing = append(missing, id)
		case !g.Equal(w):
			wrong = append(wrong, fmt.Sprintf("%s=%v (want %v)", id, g, w))
		}
	}
	for id := range got.Tenants.All() {
		if _, ok := want.Tenants.Lookup(id); !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(wrong) > 0 {
		t.Errorf("%s: tenants differ: missing %v, extra %v, wrong %v", what, missing, extra, wrong)
	}
}
