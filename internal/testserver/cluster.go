package testserver

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

// Cluster is a Redis Cluster of redis-server processes started for one
// test: masters only (no replicas), each on free loopback ports (client and
// bus) in its own temp dir, with an append-only file so that a node stopped
// with StopNode comes back with its keys. It is stopped at test cleanup.
type Cluster struct {
	t      testing.TB
	nodes  []*Redis
	ids    []string
	client *redisc.Cluster
}

// StartCluster starts masters redis-server processes in cluster mode
// (--cluster-enabled yes, --cluster-node-timeout 2000), joins them with
// `redis-cli --cluster create ... --cluster-replicas 0`, which spreads the
// 16384 slots evenly, and waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli := RequireBinary(t, "redis-cli", "redis-tools")
	c := &Cluster{t: t}
	for range masters {
		c.nodes = append(c.nodes, StartRedis(t,
			"--cluster-enabled", "yes",
			// Relative to --dir, the node's own temp dir.
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
			// The bus port defaults to port+10000, which may be taken:
			// give it a free port of its own.
			"--cluster-port", strconv.Itoa(pickPort(t)),
			"--appendonly", "yes",
		))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.nodes {
		id, err := redis.String(n.Do("CLUSTER", "MYID"), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ids = append(c.ids, id)
	}
	c.WaitOK()
	c.client = &redisc.Cluster{
		StartupNodes: c.Addrs(),
		DialOptions:  []redis.DialOption{redis.DialConnectTimeout(5 * time.Second)},
		CreatePool: func(addr string, opts ...redis.DialOption) (*redis.Pool, error) {
			return &redis.Pool{
				MaxIdle: 4,
				Dial:    func() (redis.Conn, error) { return redis.Dial("tcp", addr, opts...) },
				// Nodes are stopped and restarted under the client.
				TestOnBorrow: func(c redis.Conn, _ time.Time) error { _, err := c.Do("PING"); return err },
			}, nil
		},
	}
	if err := c.client.Refresh(); err != nil {
		t.Fatalf("redisc refresh: %v", err)
	}
	t.Cleanup(func() { c.client.Close() })
	return c
}

// Addrs returns host:port of every node, in node order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Node returns node i, for commands sent to that node alone.
func (c *Cluster) Node(i int) *Redis { return c.nodes[i] }

// NodeID returns the cluster node id of node i.
func (c *Cluster) NodeID(i int) string { return c.ids[i] }

// StopNode takes node i down: to its clients an abrupt loss. It is told to
// SHUTDOWN first so that its append-only file holds every write it
// acknowledged (with appendfsync everysec a loaded machine can postpone
// AOF writes by seconds, and a SIGKILL then lost keys a restart should
// bring back), then it is killed if still there and reaped.
func (c *Cluster) StopNode(i int) {
	_, _ = doOnce(c.nodes[i].Addr(), "SHUTDOWN")
	c.nodes[i].Stop()
}

// StartNode restarts node i on the same port with the same nodes.conf and
// append-only file, so it rejoins with its slots and keys, and waits until
// the whole cluster is ok again.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	c.nodes[i].Start()
	c.WaitOK()
}

// WaitOK waits until every node reports cluster_state:ok and knows every
// other node, with all 16384 slots served.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	err := waitFor(60*time.Second, func() error {
		for _, n := range c.nodes {
			info, err := redis.String(doOnce(n.Addr(), "CLUSTER", "INFO"))
			if err != nil {
				return err
			}
			for _, want := range []string{
				"cluster_state:ok",
				"cluster_slots_ok:16384",
				"cluster_known_nodes:" + strconv.Itoa(len(c.nodes)),
			} {
				if !strings.Contains(info, want+"\r\n") {
					return fmt.Errorf("%s: no %s in CLUSTER INFO", n.Addr(), want)
				}
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("redis cluster not ok: %v", err)
	}
}

// doOnce runs one command on a fresh connection to addr.
func doOnce(addr, cmd string, args ...any) (any, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(2*time.Second),
		redis.DialReadTimeout(10*time.Second), redis.DialWriteTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.Do(cmd, args...)
}

// Do runs one command through a cluster-aware client (redisc, following
// MOVED and ASK), routed by the slot of its first argument. It fails the
// test on error, so call it from the test's goroutine only; DoErr is for
// other goroutines.
func (c *Cluster) Do(cmd string, args ...any) any {
	c.t.Helper()
	reply, err := c.DoErr(cmd, args...)
	if err != nil {
		c.t.Fatalf("redis cluster %s %v: %v", cmd, args, err)
	}
	return reply
}

// DoErr is Do returning the error.
func (c *Cluster) DoErr(cmd string, args ...any) (any, error) {
	conn, err := redisc.RetryConn(c.client.Get(), 5, 50*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.Do(cmd, args...)
}

// HSet writes a hash through the cluster-aware client: fields alternate
// name, value.
func (c *Cluster) HSet(key string, fieldValues ...any) {
	c.t.Helper()
	c.Do("HSET", append([]any{key}, fieldValues...)...)
}

// SlotOwner returns the index of the node serving slot, as node 0 sees it.
func (c *Cluster) SlotOwner(slot int) int {
	c.t.Helper()
	slots, err := redis.Values(c.nodes[0].Do("CLUSTER", "SLOTS"), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range slots {
		r, _ := redis.Values(s, nil)
		lo, _ := redis.Int(r[0], nil)
		hi, _ := redis.Int(r[1], nil)
		if slot < lo || slot > hi {
			continue
		}
		node, _ := redis.Values(r[2], nil)
		port, _ := redis.Int(node[1], nil)
		for i, n := range c.nodes {
			if n.Port == port {
				return i
			}
		}
	}
	c.t.Fatalf("slot %d is served by no node", slot)
	return -1
}

// KeyCount returns how many keys node i holds (DBSIZE).
func (c *Cluster) KeyCount(i int) int {
	c.t.Helper()
	n, err := redis.Int(c.nodes[i].Do("DBSIZE"), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// MigrateSlot moves slot from node from to node to the way redis-cli
// --cluster reshard does: SETSLOT IMPORTING on the target, SETSLOT
// MIGRATING on the source, MIGRATE of the slot's keys, then SETSLOT NODE on
// the target, the source and the other masters. It returns errors rather
// than failing the test, so it may run in a goroutine next to the test.
func (c *Cluster) MigrateSlot(slot, from, to int) error {
	return c.MigrateSlotPaced(slot, from, to, 0)
}

// MigrateSlotPaced is MigrateSlot moving one key per MIGRATE and pausing
// between keys, so that readers run while the slot is half moved.
func (c *Cluster) MigrateSlotPaced(slot, from, to int, pause time.Duration) error {
	src, dst := c.nodes[from].Addr(), c.nodes[to].Addr()
	if _, err := doOnce(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", c.ids[from]); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING on %s: %w", dst, err)
	}
	if _, err := doOnce(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", c.ids[to]); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING on %s: %w", src, err)
	}
	batch := 100
	if pause > 0 {
		batch = 1
	}
	for {
		keys, err := redis.Strings(doOnce(src, "CLUSTER", "GETKEYSINSLOT", slot, batch))
		if err != nil {
			return fmt.Errorf("GETKEYSINSLOT on %s: %w", src, err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"127.0.0.1", c.nodes[to].Port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if _, err := doOnce(src, "MIGRATE", args...); err != nil {
			return fmt.Errorf("MIGRATE from %s: %w", src, err)
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	// Target first, so that the slot is never left without an owner that
	// accepts its keys; then the source; then everyone else.
	order := []int{to, from}
	for i := range c.nodes {
		if i != to && i != from {
			order = append(order, i)
		}
	}
	var errs []error
	for _, i := range order {
		if _, err := doOnce(c.nodes[i].Addr(), "CLUSTER", "SETSLOT", slot, "NODE", c.ids[to]); err != nil {
			errs = append(errs, fmt.Errorf("SETSLOT NODE on %s: %w", c.nodes[i].Addr(), err))
		}
	}
	return errors.Join(errs...)
}
