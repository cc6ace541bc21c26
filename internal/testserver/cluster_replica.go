package testserver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// AddReplica starts one more node, joins it to the cluster as a replica of
// master, waits until it has the master's data, and returns its index. It
// is then a node like the others (Addrs, Node, WaitOK count it).
func (c *Cluster) AddReplica(master int) int {
	c.t.Helper()
	n := StartRedis(c.t,
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "2000",
		"--cluster-port", strconv.Itoa(pickPort(c.t)),
		"--appendonly", "yes",
	)
	// MEET needs node 0's bus port, which is not port+10000 here: it is
	// in node 0's own line of CLUSTER NODES, as host:port@bus.
	nodes, err := redis.String(c.nodes[0].Do("CLUSTER", "NODES"), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	var host, port, bus string
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.Contains(f[2], "myself") {
			addr, _, _ := strings.Cut(f[1], ",")
			addr, bus, _ = strings.Cut(addr, "@")
			host, port, _ = strings.Cut(addr, ":")
		}
	}
	if bus == "" {
		c.t.Fatalf("no bus port for node 0 in CLUSTER NODES:\n%s", nodes)
	}
	if _, err := doOnce(n.Addr(), "CLUSTER", "MEET", host, port, bus); err != nil {
		c.t.Fatalf("CLUSTER MEET: %v", err)
	}
	id, err := redis.String(n.Do("CLUSTER", "MYID"), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes = append(c.nodes, n)
	c.ids = append(c.ids, id)
	// REPLICATE needs the master known to the new node first.
	err = waitFor(60*time.Second, func() error {
		_, err := doOnce(n.Addr(), "CLUSTER", "REPLICATE", c.ids[master])
		return err
	})
	if err != nil {
		c.t.Fatalf("CLUSTER REPLICATE: %v", err)
	}
	err = waitFor(60*time.Second, func() error {
		info, err := redis.String(doOnce(n.Addr(), "INFO", "replication"))
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up\r\n") {
			return fmt.Errorf("%s: replication link not up", n.Addr())
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.WaitOK()
	return len(c.nodes) - 1
}

// Failover makes replica the master of its master's slots with CLUSTER
// FAILOVER (the coordinated, lossless kind) and waits until the cluster is
// ok with it as a master.
func (c *Cluster) Failover(replica int) {
	c.t.Helper()
	if _, err := doOnce(c.nodes[replica].Addr(), "CLUSTER", "FAILOVER"); err != nil {
		c.t.Fatalf("CLUSTER FAILOVER: %v", err)
	}
	err := waitFor(60*time.Second, func() error {
		info, err := redis.String(doOnce(c.nodes[replica].Addr(), "INFO", "replication"))
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master\r\n") {
			return fmt.Errorf("%s is not a master yet", c.nodes[replica].Addr())
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.WaitOK()
}
