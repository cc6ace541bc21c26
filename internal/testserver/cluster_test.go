package testserver

import (
	"strconv"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
)

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	for i := range 300 {
		c.HSet("k:"+itoa(i), "v", i)
	}
	total := 0
	for i := range 3 {
		n := c.KeyCount(i)
		if n == 0 {
			t.Errorf("node %d holds no key", i)
		}
		total += n
	}
	if total != 300 {
		t.Errorf("%d keys in the cluster, want 300", total)
	}

	// Move the slot of k:7 to another node: the key goes with it.
	slot := redisc.Slot("k:7")
	from := c.SlotOwner(slot)
	to := (from + 1) % 3
	if err := c.MigrateSlot(slot, from, to); err != nil {
		t.Fatal(err)
	}
	c.WaitOK()
	if got := c.SlotOwner(slot); got != to {
		t.Errorf("slot %d on node %d after migration, want %d", slot, got, to)
	}
	if v, err := redis.Int(c.Node(to).Do("HGET", "k:7", "v"), nil); err != nil || v != 7 {
		t.Errorf("k:7 on the new owner = %v, %v", v, err)
	}

	// A node killed and restarted keeps its slots and keys.
	before := c.KeyCount(to)
	c.StopNode(to)
	c.StartNode(to)
	if got := c.KeyCount(to); got != before {
		t.Errorf("node %d has %d keys after a restart, want %d", to, got, before)
	}
	if v, err := redis.Int(c.Do("HGET", "k:7", "v"), nil); err != nil || v != 7 {
		t.Errorf("k:7 through the cluster client after restart = %v, %v", v, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
