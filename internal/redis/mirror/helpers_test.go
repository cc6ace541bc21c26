package mirror

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

var pattern = usage.MustParseKeyPattern(usage.DefaultKeyPattern)

func newStore(t *testing.T, addr string, opts ...conn.Option) *read.Reader {
	t.Helper()
	target, err := conn.ParseTarget(addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := read.New(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// groupTenants share the hash tag {grp}: their keys all land in one slot,
// which the migration tests move between nodes.
const groupTenants = 40

var groupSlot = redisc.Slot("usage:{grp}0:202611")

// usageCommands is the data set of the cluster tests: 3000 tenants spread
// over every slot, older periods, a group of tenants in one slot, and every
// kind of bad data.
func usageCommands() [][]any {
	var cmds [][]any
	for i := range 3000 {
		cmds = append(cmds, []any{"HSET", "usage:" + strconv.Itoa(i) + ":202611",
			"messages", i * 7, "storage", i * 1000, "users", i % 10, "whatsappSessions", i % 3})
		if i%10 == 0 {
			cmds = append(cmds, []any{"HSET", "usage:" + strconv.Itoa(i) + ":202610", "messages", 1})
		}
	}
	for i := range groupTenants {
		cmds = append(cmds, []any{"HSET", "usage:{grp}" + strconv.Itoa(i) + ":202611", "messages", 100 + i})
	}
	cmds = append(cmds,
		[]any{"HSET", "usage:apicalls:202611", "messages", 10, "apiCalls", 7},
		[]any{"HSET", "usage:bad:202611", "messages", "-3", "storage", "1.5", "users", 2},
		[]any{"HSET", "usage:badfield:202611", "bad\xfffield", 1, "messages", 2},
		[]any{"SET", "usage:wt1:202611", "not a hash"},
		[]any{"RPUSH", "usage:wt2:202611", "x"},
		[]any{"HSET", "usage:x:2026-11", "messages", 1},
		[]any{"HSET", "other:9:202611", "messages", 1},
	)
	return cmds
}

// seedSingle writes cmds to a single server in one pipeline.
func seedSingle(t *testing.T, srv *testserver.Redis, cmds [][]any) {
	t.Helper()
	c := srv.Conn()
	for _, cmd := range cmds {
		if err := c.Send(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Do(""); err != nil {
		t.Fatal(err)
	}
}

// seedCluster writes cmds through the cluster-aware client.
func seedCluster(t *testing.T, c *testserver.Cluster, cmds [][]any) {
	t.Helper()
	for _, cmd := range cmds {
		c.Do(cmd[0].(string), cmd[1:]...)
	}
}

func newCluster(t *testing.T, addrs []string, opts ...conn.Option) *read.Reader {
	t.Helper()
	var seeds []conn.Target
	for _, a := range addrs {
		tg, err := conn.ParseTarget(a)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, tg)
	}
	c, err := read.NewCluster(seeds, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sameSnapshot(t *testing.T, what string, got, want *usage.Snapshot) {
	t.Helper()
	if got.Keys != want.Keys {
		t.Errorf("%s: keys = %d, want %d", what, got.Keys, want.Keys)
	}
	if !maps.Equal(got.Skipped, want.Skipped) {
		t.Errorf("%s: skipped = %v, want %v", what, got.Skipped, want.Skipped)
	}
	if !reflect.DeepEqual(got.Tenants, want.Tenants) {
		var missing, extra, wrong []string
		for id, w := range want.Tenants {
			g, ok := got.Tenants[id]
			switch {
			case !ok:
				missing = append(missing, id)
			case !g.Equal(w):
				wrong = append(wrong, fmt.Sprintf("%s=%v (want %v)", id, g, w))
			}
		}
		for id := range got.Tenants {
			if _, ok := want.Tenants[id]; !ok {
				extra = append(extra, id)
			}
		}
		t.Errorf("%s: tenants differ: missing %v, extra %v, wrong %v", what, missing, extra, wrong)
	}
}

// fixture: one cluster and one single server holding the same data, and
// the single server's snapshot, which the cluster must reproduce.
type clusterFixture struct {
	cluster *testserver.Cluster
	want    *usage.Snapshot
}

func newClusterFixture(t *testing.T) *clusterFixture {
	t.Helper()
	f := &clusterFixture{cluster: testserver.StartCluster(t, 3)}
	cmds := usageCommands()
	seedCluster(t, f.cluster, cmds)
	single := testserver.StartRedis(t)
	seedSingle(t, single, cmds)
	var err error
	if f.want, err = newStore(t, single.Addr()).ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	// apicalls, bad, badfield, and the two wrong-type keys (known, unreadable).
	if len(f.want.Tenants) != 3000+groupTenants+5 {
		t.Fatalf("reference snapshot has %d tenants", len(f.want.Tenants))
	}
	return f
}

// value is c's value of metricType, 0 when absent or unreadable.
func value(c usage.Counters, metricType string) int64 {
	v, _ := c.Value(metricType)
	return v
}

// slotOwnerErr is the index of the master that serves slot, -1 on error;
// for a goroutine other than the test's.
func slotOwnerErr(cl *testserver.Cluster, slot int) int {
	c, err := redis.Dial("tcp", cl.Addrs()[0])
	if err != nil {
		return -1
	}
	defer c.Close()
	ranges, err := redis.Values(c.Do("CLUSTER", "SLOTS"))
	if err != nil {
		return -1
	}
	for _, r := range ranges {
		v, _ := redis.Values(r, nil)
		if len(v) < 3 {
			continue
		}
		lo, _ := redis.Int(v[0], nil)
		hi, _ := redis.Int(v[1], nil)
		master, _ := redis.Values(v[2], nil)
		if slot < lo || slot > hi || len(master) < 2 {
			continue
		}
		port, _ := redis.Int(master[1], nil)
		for i, a := range cl.Addrs() {
			if strings.HasSuffix(a, ":"+strconv.Itoa(port)) {
				return i
			}
		}
	}
	return -1
}

// setClock replaces the package clock for the test.
func setClock(t *testing.T, clock func() time.Time) {
	t.Cleanup(func() { now = time.Now })
	now = clock
}
