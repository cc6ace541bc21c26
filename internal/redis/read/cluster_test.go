package read

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

var groupSlot = redisc.Slot("usage:{grp}0:202611")

func newCluster(t *testing.T, addrs []string, opts ...conn.Option) *Reader {
	t.Helper()
	var seeds []conn.Target
	for _, a := range addrs {
		tg, err := conn.ParseTarget(a)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, tg)
	}
	c, err := NewCluster(seeds, opts...)
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

func TestClusterReadUsageMatchesSingleServer(t *testing.T) {
	f := newClusterFixture(t)
	for i := range 3 {
		if n := f.cluster.KeyCount(i); n < 500 {
			t.Errorf("node %d holds %d keys: the data is not spread over the cluster", i, n)
		}
	}
	for _, tc := range []struct{ scan, batch int }{{1000, 1000}, {7, 5}} {
		t.Run(fmt.Sprintf("scan%d-batch%d", tc.scan, tc.batch), func(t *testing.T) {
			var mu sync.Mutex
			ops := map[string]int{}
			c := newCluster(t, f.cluster.Addrs()[:1], conn.WithScanCount(tc.scan), conn.WithBatchSize(tc.batch),
				conn.WithObserver(func(op string, _ time.Duration) { mu.Lock(); ops[op]++; mu.Unlock() }))
			scansBefore := make([]int, 3)
			for i := range 3 {
				scansBefore[i] = f.cluster.Node(i).CommandCalls("scan")
			}
			snap, err := c.ReadUsage(context.Background(), pattern, "202611")
			if err != nil {
				t.Fatal(err)
			}
			testserver.SameSnapshot(t, "cluster", snap, f.want)
			// SCAN ran on every master, not on the seed alone.
			for i := range 3 {
				if n := f.cluster.Node(i).CommandCalls("scan") - scansBefore[i]; n == 0 {
					t.Errorf("no SCAN on node %d", i)
				}
				if n := f.cluster.Node(i).CommandCalls("keys"); n != 0 {
					t.Errorf("KEYS ran %d times on node %d", n, i)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, op := range []string{"scan", "hgetall", "cluster_nodes", "connect"} {
				if ops[op] == 0 {
					t.Errorf("operation %q not observed: %v", op, ops)
				}
			}
		})
	}
}

func TestClusterSeedsAndSettings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seeds []string
		ok    bool
	}{
		{"none", nil, false},
		{"two plain", []string{"127.0.0.1:7000", "127.0.0.1:7001"}, true},
		{"same password", []string{"redis://:pw@127.0.0.1:7000", "127.0.0.1:7001"}, true},
		{"database", []string{"redis://127.0.0.1:7000/1"}, false},
		{"mixed tls", []string{"redis://127.0.0.1:7000", "rediss://127.0.0.1:7001"}, false},
		{"two passwords", []string{"redis://:topsecret@127.0.0.1:7000", "redis://:other@127.0.0.1:7001"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seeds []conn.Target
			for _, s := range tc.seeds {
				tg, err := conn.ParseTarget(s)
				if err != nil {
					t.Fatal(err)
				}
				seeds = append(seeds, tg)
			}
			c, err := NewCluster(seeds)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error reveals a password: %v", err)
			}
			if c != nil && strings.Contains(c.String(), "pw") {
				t.Errorf("String() reveals a password: %s", c)
			}
		})
	}
	if _, err := NewCluster([]conn.Target{{Address: "127.0.0.1:1"}}, conn.WithBatchSize(0)); err == nil {
		t.Error("batch size 0 accepted")
	}
}

func TestClusterPassword(t *testing.T) {
	// A cluster whose nodes require a password: the password reaches every
	// node, not only the seed.
	cl := testserver.StartCluster(t, 3)
	for i := range 3 {
		cl.Node(i).Do("CONFIG", "SET", "requirepass", "s3cret-pw")
	}
	c := newCluster(t, cl.Addrs()[:1], password("s3cret-pw"))
	if _, err := c.ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	nodes := c.nodeInfo(context.Background())
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(nodes))
	}
	for _, n := range nodes {
		if n.Err != nil {
			t.Errorf("%s: %v", n.Node, n.Err)
		}
	}
	bad := newCluster(t, cl.Addrs()[:1], password("wrong"))
	_, err := bad.ReadUsage(context.Background(), pattern, "202611")
	if err == nil {
		t.Fatal("read with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestClusterReadTenantOnEveryNode(t *testing.T) {
	cl := testserver.StartCluster(t, 3)
	// One tenant per node, plus a wrong-type key.
	byNode := map[int]string{}
	for i := 0; len(byNode) < 3; i++ {
		key := "usage:" + strconv.Itoa(i) + ":202611"
		if n := cl.SlotOwner(redisc.Slot(key)); byNode[n] == "" {
			byNode[n] = key
			cl.HSet(key, "messages", 1000+n, "users", "x")
		}
	}
	cl.Do("SET", "usage:wt:202611", "oops")
	c := newCluster(t, cl.Addrs()[2:])
	for n, key := range byNode {
		got, found, skipped, err := c.ReadTenant(context.Background(), key)
		if err != nil {
			t.Fatalf("%s (node %d): %v", key, n, err)
		}
		want := unreadable(usage.CountersOf(map[string]int64{"messages": int64(1000 + n)}), usage.ReasonInvalidValue, "users")
		if !found || !got.Equal(want) || skipped[usage.ReasonInvalidValue] != 1 {
			t.Errorf("%s (node %d): %v found=%v skipped=%v, want %v", key, n, got, found, skipped, want)
		}
	}
	if _, found, skipped, err := c.ReadTenant(context.Background(), "usage:wt:202611"); err != nil || !found || skipped[usage.ReasonWrongType] != 1 {
		t.Errorf("wrong type: found=%v skipped=%v err=%v", found, skipped, err)
	}
	if _, found, _, err := c.ReadTenant(context.Background(), "usage:nobody:202611"); err != nil || found {
		t.Errorf("missing key: found=%v err=%v", found, err)
	}

	// The reader's slot map is now stale for a moved slot: MOVED is followed.
	key := byNode[0]
	slot := redisc.Slot(key)
	if err := cl.MigrateSlot(slot, 0, 1); err != nil {
		t.Fatal(err)
	}
	got, found, _, err := c.ReadTenant(context.Background(), key)
	if err != nil || !found || value(got, "messages") != 1000 {
		t.Errorf("after the slot moved: %v found=%v err=%v", got, found, err)
	}

	// A slot half migrated: keys still on the source and keys already on
	// the target (ASK) are both found.
	cl.Node(2).Do("CLUSTER", "SETSLOT", groupSlot, "IMPORTING", cl.NodeID(cl.SlotOwner(groupSlot)))
	owner := cl.SlotOwner(groupSlot)
	if owner == 2 {
		t.Skip("group slot already on node 2")
	}
	for i := range 4 {
		cl.HSet("usage:{grp}"+strconv.Itoa(i)+":202611", "messages", i)
	}
	cl.Node(owner).Do("CLUSTER", "SETSLOT", groupSlot, "MIGRATING", cl.NodeID(2))
	cl.Node(owner).Do("MIGRATE", "127.0.0.1", cl.Node(2).Port, "", 0, 5000, "KEYS", "usage:{grp}0:202611", "usage:{grp}1:202611")
	for i := range 4 {
		got, found, _, err := c.ReadTenant(context.Background(), "usage:{grp}"+strconv.Itoa(i)+":202611")
		if err != nil || !found || value(got, "messages") != int64(i) {
			t.Errorf("{grp}%d mid-migration: %v found=%v err=%v", i, got, found, err)
		}
	}
}

// TestClusterHalfMigratedSlot reads while a slot is being migrated: half
// its keys on the source, half on the target (which answers only after
// ASKING), and a key that moves between the SCAN that saw it and its
// HGETALL (ASK redirection). The read is exact.
func TestClusterHalfMigratedSlot(t *testing.T) {
	f := newClusterFixture(t)
	cl := f.cluster
	from := cl.SlotOwner(groupSlot)
	to := (from + 1) % 3
	cl.Node(to).Do("CLUSTER", "SETSLOT", groupSlot, "IMPORTING", cl.NodeID(from))
	cl.Node(from).Do("CLUSTER", "SETSLOT", groupSlot, "MIGRATING", cl.NodeID(to))
	migrate := func(n int) {
		keys, err := redis.Strings(cl.Node(from).Do("CLUSTER", "GETKEYSINSLOT", groupSlot, n), nil)
		if err != nil || len(keys) == 0 {
			t.Errorf("GETKEYSINSLOT: %v %v", keys, err)
			return
		}
		args := []any{"127.0.0.1", cl.Node(to).Port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if _, err := cl.Node(from).Conn().Do("MIGRATE", args...); err != nil {
			t.Errorf("MIGRATE: %v", err)
		}
	}
	migrate(testserver.GroupTenants / 2)

	c := newCluster(t, cl.Addrs())
	snap, err := c.ReadUsage(context.Background(), pattern, "202611")
	if err != nil {
		t.Fatal(err)
	}
	testserver.SameSnapshot(t, "half migrated", snap, f.want)

	// Move keys while the reader is between its SCANs and its HGETALLs:
	// the observer runs in the reading goroutine, right after a SCAN reply.
	// When that was the source's SCAN, the keys it just listed answer ASK.
	// Which node's SCAN comes first varies, so read until one did.
	asks := func() int {
		text, _ := redis.String(cl.Node(from).Do("INFO", "errorstats"), nil)
		v, _, _ := strings.Cut(parseInfo(text)["errorstat_ASK"], ",")
		n, _ := strconv.Atoi(strings.TrimPrefix(v, "count="))
		return n
	}
	for run := 0; asks() == 0; run++ {
		if run == 8 {
			t.Fatal("no ASK redirection after 8 reads: the path is untested")
		}
		var scans atomic.Int32
		var once sync.Once
		trigger := int32(run%2 + 1)
		c := newCluster(t, cl.Addrs(), conn.WithObserver(func(op string, _ time.Duration) {
			if op == "scan" && scans.Add(1) == trigger {
				once.Do(func() { migrate(2) })
			}
		}))
		snap, err := c.ReadUsage(context.Background(), pattern, "202611")
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		testserver.SameSnapshot(t, fmt.Sprintf("keys moving during read %d", run), snap, f.want)
	}

	// Finish the migration; the read is still exact.
	if err := cl.MigrateSlot(groupSlot, from, to); err != nil {
		t.Fatal(err)
	}
	cl.WaitOK()
	snap, err = c.ReadUsage(context.Background(), pattern, "202611")
	if err != nil {
		t.Fatal(err)
	}
	testserver.SameSnapshot(t, "after migration", snap, f.want)
}

// TestClusterStaleCopyNotCounted: a node holding a copy of a key of a slot
// it does not serve (a leftover of an aborted migration) is not read: the
// key is counted once, with the owner's value.
func TestClusterStaleCopyNotCounted(t *testing.T) {
	cl := testserver.StartCluster(t, 3)
	key := "usage:stale:202611"
	slot := redisc.Slot(key)
	owner := cl.SlotOwner(slot)
	other := (owner + 1) % 3
	cl.HSet(key, "messages", 5)
	// Write a copy on another node through an aborted import.
	conn := cl.Node(other).Conn()
	for _, cmd := range [][]any{
		{"CLUSTER", "SETSLOT", slot, "IMPORTING", cl.NodeID(owner)},
		{"ASKING"},
		{"HSET", key, "messages", 999},
		{"CLUSTER", "SETSLOT", slot, "STABLE"},
	} {
		if _, err := conn.Do(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	c := newCluster(t, cl.Addrs())
	snap, err := c.ReadUsage(context.Background(), pattern, "202611")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Keys != 1 || snap.Tenants.Len() != 1 || value(snap.Counters("stale"), "messages") != 5 {
		t.Errorf("keys=%d tenants=%v, want the owner's copy once", snap.Keys, snap.Tenants)
	}
}

// TestClusterMasterDown: with one master stopped the read fails (within its
// deadline), never returning the other masters' keys as if they were all;
// restarted, the same reader reads everything again.
func TestClusterMasterDown(t *testing.T) {
	f := newClusterFixture(t)
	c := newCluster(t, f.cluster.Addrs(), conn.WithTimeouts(500*time.Millisecond, time.Second, time.Second))
	if _, err := c.ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	f.cluster.StopNode(1)
	for _, wait := range []time.Duration{0, 5 * time.Second} {
		// Right away, and once the other nodes have marked it failed.
		time.Sleep(wait)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		snap, err := c.ReadUsage(ctx, pattern, "202611")
		cancel()
		if err == nil {
			t.Fatalf("read with a master down succeeded: %d tenants", snap.Tenants.Len())
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("read took %v, past its 2s deadline", d)
		}
		nodes := c.nodeInfo(context.Background())
		down := 0
		for _, n := range nodes {
			if n.Err != nil {
				down++
				if n.Node != f.cluster.Addrs()[1] {
					t.Errorf("node %s reported down", n.Node)
				}
			}
		}
		if len(nodes) != 3 || down != 1 {
			t.Errorf("node info: %d nodes, %d down; want 3 and 1: %+v", len(nodes), down, nodes)
		}
		if _, err := sumInfo(nodes); err == nil {
			t.Error("summed INFO with a node down")
		}
	}
	f.cluster.StartNode(1)
	var snap *usage.Snapshot
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		if snap, err = c.ReadUsage(context.Background(), pattern, "202611"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no recovery after the master came back: %v", err)
	}
	testserver.SameSnapshot(t, "after restart", snap, f.want)
	sum := c.Info(context.Background())
	if sum.Err != nil {
		t.Fatal(sum.Err)
	}
	if mem, ok := billing.InfoInt(sum.Fields, "used_memory"); !ok || mem <= 0 {
		t.Errorf("summed used_memory = %v %v", mem, ok)
	}
}

func TestClusterHonoursDeadline(t *testing.T) {
	cl := testserver.StartCluster(t, 3)
	cl.HSet("usage:1:202611", "messages", 1)
	c := newCluster(t, cl.Addrs())
	if _, err := c.ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	go cl.Node(2).Conn().Do("DEBUG", "SLEEP", "2")
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ReadUsage(ctx, pattern, "202611")
	if err == nil {
		t.Fatal("read succeeded while a node slept")
	}
	// The connection's read deadline (set from ctx) may fire just before
	// ctx itself does: either way the read gave up at the deadline.
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("read returned after %v, deadline 300ms", d)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	c.nodeInfo(ctx)
	if d := time.Since(start); d > time.Second {
		t.Errorf("NodeInfo returned after %v, deadline 300ms", d)
	}
}

// TestClusterReadsDuringMigrations migrates slots back and forth, key by
// key, while reading in a loop: every read that succeeds is exact (no
// tenant lost or doubled, the key count right); a read may fail only with
// an error.
func TestClusterReadsDuringMigrations(t *testing.T) {
	f := newClusterFixture(t)
	cl := f.cluster
	slots := []int{groupSlot, redisc.Slot("usage:1:202611"), redisc.Slot("usage:2:202611"), redisc.Slot("usage:0:202610")}

	stop := make(chan struct{})
	var migrations atomic.Int32
	var inFlight atomic.Int32 // a migration between IMPORTING and the last SETSLOT NODE
	var migErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			slot := slots[i%len(slots)]
			from := slotOwnerErr(cl, slot)
			if from < 0 {
				migErr = fmt.Errorf("slot %d has no owner", slot)
				return
			}
			inFlight.Add(1)
			err := cl.MigrateSlotPaced(slot, from, (from+1)%3, 2*time.Millisecond)
			inFlight.Add(-1)
			if err != nil {
				migErr = err
				return
			}
			migrations.Add(1)
		}
	}()

	c := newCluster(t, cl.Addrs(), conn.WithScanCount(200), conn.WithBatchSize(100))
	var ok, failed, okDuringMigration int
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		before := migrations.Load()
		migratingBefore := inFlight.Load() > 0
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		snap, err := c.ReadUsage(ctx, pattern, "202611")
		cancel()
		if err != nil {
			failed++
			t.Logf("read failed (allowed): %v", err)
			continue
		}
		ok++
		if migratingBefore && inFlight.Load() > 0 && migrations.Load() == before {
			okDuringMigration++
		}
		testserver.SameSnapshot(t, fmt.Sprintf("read %d", ok+failed), snap, f.want)
		if t.Failed() {
			break
		}
	}
	close(stop)
	<-done
	if migErr != nil {
		t.Fatalf("migration: %v", migErr)
	}
	t.Logf("%d migrations; %d reads exact (%d of them within one migration), %d failed", migrations.Load(), ok, okDuringMigration, failed)
	if migrations.Load() < 3 || ok < 3 {
		t.Errorf("too little happened: %d migrations, %d good reads", migrations.Load(), ok)
	}
	if okDuringMigration == 0 {
		t.Error("no read succeeded while a slot was mid-migration: migrations make reads fail instead of being read through")
	}
}

// slotOwnerErr is SlotOwner for a goroutine other than the test's.
func slotOwnerErr(cl *testserver.Cluster, slot int) int {
	for i, addr := range cl.Addrs() {
		conn, err := redis.Dial("tcp", addr)
		if err != nil {
			return -1
		}
		text, err := redis.String(conn.Do("CLUSTER", "NODES"))
		conn.Close()
		if err != nil {
			return -1
		}
		lines, err := parseClusterNodes(text)
		if err != nil {
			return -1
		}
		for _, l := range lines {
			if !l.has("myself") {
				continue
			}
			for _, r := range l.claims {
				if r[0] <= slot && slot <= r[1] {
					return i
				}
			}
		}
	}
	return -1
}

func TestParseClusterNodes(t *testing.T) {
	text := "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [93->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]\n" +
		"292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f ::1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 42 [77-<-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]\n" +
		"824fe116063bc5fcf9f4ffd895bc17aee7731ac3 :0@0 master,fail,noaddr - 1426238316232 1426238316232 2 disconnected\n"
	lines, err := parseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	a, b, d := lines[1], lines[2], lines[3]
	if a.addr != "127.0.0.1:30001" || !a.has("myself") || a.epoch != 1 || !reflect.DeepEqual(a.claims, [][2]int{{0, 5460}}) ||
		a.migrating[93] != "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f" {
		t.Errorf("line a = %+v", a)
	}
	if b.addr != "[::1]:30003" || !reflect.DeepEqual(b.claims, [][2]int{{10923, 16383}, {42, 42}}) ||
		b.importing[77] != "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca" {
		t.Errorf("line b = %+v", b)
	}
	if lines[0].addr != "127.0.0.1:30004" || d.addr != "" {
		t.Errorf("addresses %q %q", lines[0].addr, d.addr)
	}
	if got := masterAddrs(lines); !reflect.DeepEqual(got, []string{"127.0.0.1:30001", "[::1]:30003"}) {
		t.Errorf("masters = %v", got)
	}
	for _, bad := range []string{"x y z", "id 1.2.3.4:1@2 master - 0 0 x connected", "id 1.2.3.4:1@2 master - 0 0 1 connected 5-2", "id 1.2.3.4:1@2 master - 0 0 1 connected 16384"} {
		if _, err := parseClusterNodes(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseClusterNodes: any reply parses or fails, never panics, and what
// parses stays within the slot space.
func FuzzParseClusterNodes(f *testing.F) {
	f.Add("e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [93->-292f]\n")
	f.Add("292f ::1:30003@31003,host master - 0 1 3 connected 10923-16383 42 [77-<-e7d1]\n")
	f.Add("824f :0@0 master,fail,noaddr - 1 1 2 disconnected\n")
	f.Add("x @ , - 0 0 0 c [ ] [-] 1-")
	f.Fuzz(func(t *testing.T, text string) {
		lines, err := parseClusterNodes(text)
		if err != nil {
			return
		}
		for _, l := range lines {
			for _, r := range l.claims {
				if r[0] < 0 || r[1] >= redisc.HashSlots || r[0] > r[1] {
					t.Fatalf("claim %v out of range", r)
				}
			}
		}
		masterAddrs(lines)
	})
}
