package read

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mna/redisc"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestReadUsageOversizedHash reads, from a real Redis, hashes over the
// bound (a 16 MiB value, 40k fields) among normal ones: they are skipped and
// counted, the others read, and the bytes allocated stay far below the
// value's size, because the reply is dropped as it streams in.
func TestReadUsageOversizedHash(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.HSet("usage:1:202611", "messages", 5)
	srv.Do("HSET", "usage:blob:202611", "storage", strings.Repeat("9", 16<<20))
	args := []any{"usage:wide:202611"}
	for i := range 40000 {
		args = append(args, fmt.Sprintf("f%d", i), i)
	}
	srv.Do("HSET", args...)
	srv.HSet("usage:2:202611", "messages", 7)

	s := newStore(t, srv.Addr(), conn.WithMaxReplyBytes(256<<10))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	snap, err := s.ReadUsage(context.Background(), pattern, "202611")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Skipped[usage.ReasonOversizedHash]; got != 2 {
		t.Errorf("oversized hashes = %d, want 2 (skipped: %v)", got, snap.Skipped)
	}
	if snap.Tenants.Len() != 4 || value(snap.Counters("1"), "messages") != 5 || value(snap.Counters("2"), "messages") != 7 {
		t.Errorf("tenants = %v, want 1, 2, blob and wide", snap.Tenants)
	}
	// The oversized hashes' tenants are there, their usage unknown (not 0).
	for _, id := range []string{"blob", "wide"} {
		if r, ok := snap.Counters(id).HashUnreadable(); !ok || r != usage.ReasonOversizedHash {
			t.Errorf("tenant %s: HashUnreadable = %q, %v; want %q", id, r, ok, usage.ReasonOversizedHash)
		}
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("the read allocated %d MiB for a 16 MiB value it skips", alloc>>20)
	}

	// The API's one-key read: the same, and the connection stays in step.
	for range 2 {
		blob, found, skipped, err := s.ReadTenant(context.Background(), "usage:blob:202611")
		if r, _ := blob.HashUnreadable(); err != nil || !found || r != usage.ReasonOversizedHash || skipped[usage.ReasonOversizedHash] != 1 {
			t.Errorf("ReadTenant(blob) = %v, found %v, skipped %v, %v; want found, unreadable as oversized", blob, found, skipped, err)
		}
		counters, found, _, err := s.ReadTenant(context.Background(), "usage:1:202611")
		if err != nil || !found || value(counters, "messages") != 5 {
			t.Errorf("ReadTenant(1) after it = %v, %v, %v", counters, found, err)
		}
	}

	// Unbounded, as before: the value is read (and is invalid).
	s = newStore(t, srv.Addr(), conn.WithMaxReplyBytes(0))
	if _, _, skipped, err := s.ReadTenant(context.Background(), "usage:blob:202611"); err != nil || skipped[usage.ReasonInvalidValue] != 1 {
		t.Errorf("unbounded ReadTenant(blob) = skipped %v, %v", skipped, err)
	}
}

// A reply that is not a usage hash over the bound fails its call with an
// error that names the bound.
func TestInfoOverTheBound(t *testing.T) {
	srv := testserver.StartRedis(t)
	s := newStore(t, srv.Addr(), conn.WithMaxReplyBytes(64))
	err := s.Info(context.Background()).Err
	if err == nil || !conn.IsOversized(err) && !strings.Contains(err.Error(), "BILLING_EXPORTER_OVERSIZED") {
		t.Errorf("Info with a 64-byte bound: %v, want the oversized error", err)
	}
	if !bytes.Contains([]byte(fmt.Sprint(err)), []byte("64 bytes")) {
		t.Errorf("error %v does not name the bound", err)
	}
}

// TestClusterOversizedHash: every connection of a cluster (the node
// reader on each master, the single-key read) has the bound: an
// oversized hash on every master is unreadable and counted, the others
// are read.
func TestClusterOversizedHash(t *testing.T) {
	cl := testserver.StartCluster(t, 3)
	big := strings.Repeat("9", 64<<10)
	blobs := map[int]string{} // master -> tenant of its oversized hash
	for i := 0; len(blobs) < 3; i++ {
		tenant := "blob" + strconv.Itoa(i)
		if n := cl.SlotOwner(redisc.Slot("usage:" + tenant + ":202611")); blobs[n] == "" {
			blobs[n] = tenant
			cl.Do("HSET", "usage:"+tenant+":202611", "storage", big)
		}
	}
	for i := range 30 {
		cl.HSet("usage:"+strconv.Itoa(i)+":202611", "messages", i)
	}
	c := newCluster(t, cl.Addrs(), conn.WithMaxReplyBytes(16<<10))
	snap, err := c.ReadUsage(context.Background(), pattern, "202611")
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Skipped[usage.ReasonOversizedHash]; got != 3 {
		t.Errorf("oversized hashes = %d, want 3 (skipped: %v)", got, snap.Skipped)
	}
	if snap.Tenants.Len() != 33 || value(snap.Counters("29"), "messages") != 29 {
		t.Errorf("%d tenants (29: %v), want 33", snap.Tenants.Len(), snap.Counters("29"))
	}
	for n, tenant := range blobs {
		if r, ok := snap.Counters(tenant).HashUnreadable(); !ok || r != usage.ReasonOversizedHash {
			t.Errorf("master %d's %s: HashUnreadable = %q, %v", n, tenant, r, ok)
		}
		got, found, skipped, err := c.ReadTenant(context.Background(), "usage:"+tenant+":202611")
		if r, _ := got.HashUnreadable(); err != nil || !found || r != usage.ReasonOversizedHash || skipped[usage.ReasonOversizedHash] != 1 {
			t.Errorf("ReadTenant(%s) = %v, found %v, skipped %v, %v", tenant, got, found, skipped, err)
		}
	}
}

// value is c's value of metricType, 0 when absent or unreadable.
func value(c usage.Counters, metricType string) int64 {
	v, _ := c.Value(metricType)
	return v
}
