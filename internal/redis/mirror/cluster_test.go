package mirror

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestClusterMirror: a mirror per master is exact on its own, under writes,
// through slot migrations done while writes and reads go on, and after a
// master's tracking connection is killed; between migrations it reads
// incrementally.
func TestClusterMirror(t *testing.T) {
	f := newClusterFixture(t)
	cl := f.cluster
	c := newCluster(t, cl.Addrs(), conn.WithScanCount(200), conn.WithBatchSize(100))
	ref := newCluster(t, cl.Addrs()) // the full read to compare with
	m := New(c, pattern, WithResyncInterval(0))
	defer m.Close()
	if m.mode() != ModeTrack {
		t.Fatalf("mode %s", m.mode())
	}
	testserver.SameSnapshot(t, "seed", readUsage(t, m, "202611"), f.want)
	if n := fullReads(m, reasonStart); n != 3 {
		t.Errorf("start full reads = %d, want one per master (3)", n)
	}

	rng := rand.New(rand.NewPCG(5, 5))
	write := func() error {
		var key string
		switch rng.IntN(3) {
		case 0:
			key = fmt.Sprintf("usage:{grp}%d:202611", rng.IntN(testserver.GroupTenants+5))
		default:
			key = fmt.Sprintf("usage:%d:202611", rng.IntN(3100))
		}
		var err error
		switch op := rng.IntN(10); {
		case op < 6:
			_, err = cl.DoErr("HINCRBY", key, "messages", 1+rng.IntN(9))
		case op < 7:
			_, err = cl.DoErr("DEL", key)
		case op < 8:
			_, err = cl.DoErr("HSET", key, "bad", "x")
		default:
			_, err = cl.DoErr("HSET", strings.Replace(key, "202611", "202610", 1), "messages", 1)
		}
		return err
	}

	// Quiet writes only: the mirror stays, reads re-read what changed.
	for range 300 {
		if err := write(); err != nil {
			t.Fatal(err)
		}
	}
	rereads := m.rereadTotal.Load()
	testserver.SameSnapshot(t, "after writes", readUsage(t, m, "202611"), readUsage(t, ref, "202611"))
	if m.rereadTotal.Load() == rereads {
		t.Error("no key re-read after writes")
	}
	if n := fullReads(m, reasonTopology); n != 0 {
		t.Errorf("topology full reads = %d with a still layout", n)
	}

	// Writes, reads and slot migrations at once; exact at each
	// checkpoint, with migrations and writes stopped.
	slots := []int{groupSlot, redisc.Slot("usage:1:202611"), redisc.Slot("usage:2:202611")}
	for cp := range 2 {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var failed atomic.Value
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				slot := slots[(i+cp)%len(slots)]
				from := slotOwnerErr(cl, slot)
				if err := cl.MigrateSlotPaced(slot, from, (from+1)%3, time.Millisecond); err != nil {
					failed.Store(err)
					return
				}
			}
		})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := write(); err != nil && !strings.Contains(err.Error(), "TRYAGAIN") {
					failed.Store(err)
					return
				}
			}
		})
		reads := 0
		for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); reads++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = m.ReadUsage(ctx, pattern, "202611") // may fail while the layout moves
			cancel()
		}
		close(stop)
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}
		got := readUsage(t, m, "202611")
		testserver.SameSnapshot(t, fmt.Sprintf("checkpoint %d after %d reads", cp, reads), got, readUsage(t, ref, "202611"))
		// And once still, incremental again.
		before := fullReads(m, reasonTopology)
		for range 20 {
			if err := write(); err != nil {
				t.Fatal(err)
			}
		}
		testserver.SameSnapshot(t, fmt.Sprintf("checkpoint %d, then", cp), readUsage(t, m, "202611"), readUsage(t, ref, "202611"))
		testserver.SameSnapshot(t, fmt.Sprintf("checkpoint %d, again", cp), readUsage(t, m, "202611"), readUsage(t, ref, "202611"))
		if n := fullReads(m, reasonTopology); n > before+1 {
			t.Errorf("checkpoint %d: %d topology full reads with the layout still", cp, n-before)
		}
	}
	if n := fullReads(m, reasonTopology); n == 0 {
		t.Error("slot migrations caused no topology full read")
	}

	// A master's tracking connection killed.
	admin := cl.Node(1).Conn()
	defer admin.Close()
	list, err := redis.String(admin.Do("CLIENT", "LIST"))
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if strings.Contains(line, "flags=t") || strings.Contains(line, "flags=P") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if _, err := admin.Do("CLIENT", "KILL", "ID", id); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no tracking connection on node 1:\n%s", list)
	}
	for range 50 {
		if err := write(); err != nil {
			t.Fatal(err)
		}
	}
	testserver.SameSnapshot(t, "after CLIENT KILL", readUsage(t, m, "202611"), readUsage(t, ref, "202611"))
}

// TestClusterMirrorStopped: a master stopped makes the read fail (never a
// partial snapshot), and once it is back (with its keys, from its
// append-only file) the numbers are exact again.
func TestClusterMirrorStopped(t *testing.T) {
	f := newClusterFixture(t)
	cl := f.cluster
	c := newCluster(t, cl.Addrs())
	ref := newCluster(t, cl.Addrs())
	m := New(c, pattern, WithResyncInterval(0))
	defer m.Close()
	readUsage(t, m, "202611")
	cl.StopNode(2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if _, err := m.ReadUsage(ctx, pattern, "202611"); err == nil {
		t.Error("read with a master down succeeded")
	}
	cancel()
	cl.StartNode(2)
	cl.WaitOK()
	var last error
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		got, err := m.ReadUsage(ctx, pattern, "202611")
		cancel()
		if last = err; err == nil {
			testserver.SameSnapshot(t, "after restart", got, readUsage(t, ref, "202611"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no read after the master came back: %v", last)
}

// TestClusterMirrorFailover: a master failed over to its replica, with
// writes before and after, gives exact numbers by the next read.
func TestClusterMirrorFailover(t *testing.T) {
	f := newClusterFixture(t)
	cl := f.cluster
	replica := cl.AddReplica(0)
	c := newCluster(t, cl.Addrs()[:1])
	ref := newCluster(t, cl.Addrs()[:1])
	m := New(c, pattern, WithResyncInterval(0))
	defer m.Close()
	testserver.SameSnapshot(t, "seed", readUsage(t, m, "202611"), f.want)
	for i := range 200 {
		cl.Do("HINCRBY", fmt.Sprintf("usage:%d:202611", i), "messages", 1000)
	}
	testserver.SameSnapshot(t, "before failover", readUsage(t, m, "202611"), readUsage(t, ref, "202611"))

	cl.Failover(replica)
	for i := range 200 {
		cl.Do("HINCRBY", fmt.Sprintf("usage:%d:202611", i), "users", 1)
	}
	cl.Do("DEL", "usage:7:202611")
	var got *usage.Snapshot
	for range 50 { // the first reads may meet a layout still settling
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := m.ReadUsage(ctx, pattern, "202611")
		cancel()
		if err == nil {
			got = s
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got == nil {
		t.Fatal("no read after the failover")
	}
	testserver.SameSnapshot(t, "after failover", got, readUsage(t, ref, "202611"))
	if n := fullReads(m, reasonTopology); n == 0 {
		t.Error("the failover caused no topology full read")
	}
}
