package mirror

import (
	"context"
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

var groupSlot = redisc.Slot("usage:{grp}0:202611")

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

// fixture: one cluster and one single server holding the same data, and
// the single server's snapshot, which the cluster must reproduce.
type clusterFixture struct {
	cluster *testserver.Cluster
	want    *usage.Snapshot
}

func newClusterFixture(t *testing.T) *clusterFixture {
	t.Helper()
	f := &clusterFixture{cluster: testserver.StartCluster(t, 3)}
	cmds := testserver.UsageCommands()
	f.cluster.Seed(cmds)
	single := testserver.StartRedis(t)
	single.Seed(t, cmds)
	var err error
	if f.want, err = newStore(t, single.Addr()).ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	// apicalls, bad, badfield, and the two wrong-type keys (known, unreadable).
	if f.want.Tenants.Len() != 3000+testserver.GroupTenants+5 {
		t.Fatalf("reference snapshot has %d tenants", f.want.Tenants.Len())
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
