package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mna/redisc"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// chunkConn serves a fixed byte stream in reads of at most chunk bytes.
type chunkConn struct {
	net.Conn
	r     io.Reader
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.chunk)]) }

func TestBoundedConnRewritesOnlyOversizedReplies(t *testing.T) {
	stub := func(limit int) string {
		return fmt.Sprintf("-%s reply of more than %d bytes (or a batch of more than %d) skipped\r\n", oversizedPrefix, limit, maxPipelineReplies*limit)
	}
	big := "$40\r\n" + strings.Repeat("9", 40) + "\r\n"
	cases := []struct {
		name, in, want string
	}{
		{"small replies pass", "+OK\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n-ERR no\r\n", "+OK\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n-ERR no\r\n"},
		{"nested array passes", "*2\r\n$1\r\n0\r\n*2\r\n$3\r\nabc\r\n$1\r\nd\r\n", "*2\r\n$1\r\n0\r\n*2\r\n$3\r\nabc\r\n$1\r\nd\r\n"},
		{"big bulk replaced", ":1\r\n" + big + ":2\r\n", ":1\r\n" + stub(32) + ":2\r\n"},
		{"big value in a hash replaced whole", "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n" + big + "+OK\r\n", stub(32) + "+OK\r\n"},
		{"many small fields over the bound", "*12\r\n" + strings.Repeat("$1\r\nx\r\n", 12) + ":7\r\n", stub(32) + ":7\r\n"},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 3, 4096} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tc.name, chunk), func(t *testing.T) {
				c := newBoundedConn(&chunkConn{r: strings.NewReader(tc.in), chunk: chunk}, 32)
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Errorf("read %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestBoundedConnBoundsAPipeline(t *testing.T) {
	// 10 replies of 10 bytes, then one of 11, with no write between them,
	// at max=10: a command connection passes the first replies that fit
	// the batch bound (8 × 10 bytes) and replaces the rest; the subscribed
	// connection of key tracking (stream-bounded) passes every reply of
	// at most 10 bytes and replaces only the one over it.
	reply := "$4\r\nabcd\r\n" // 10 bytes
	over := "$5\r\nabcde\r\n" // 11 bytes
	in := strings.Repeat(reply, 10) + over
	tests := []struct {
		name             string
		conn             func(net.Conn, int) *boundedConn
		passed, replaced int
	}{
		{"command connection", newBoundedConn, maxPipelineReplies, 10 - maxPipelineReplies + 1},
		{"subscribed connection", newStreamBoundedConn, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.conn(&chunkConn{r: strings.NewReader(in), chunk: 4096}, 10)
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(got), reply); n != tt.passed {
				t.Errorf("%d replies passed, want %d: %q", n, tt.passed, got)
			}
			if n := strings.Count(string(got), oversizedPrefix); n != tt.replaced {
				t.Errorf("%d replies replaced, want %d", n, tt.replaced)
			}
		})
	}
}

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

	s := newStore(t, srv.Addr(), WithMaxReplyBytes(256<<10))
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
	if len(snap.Tenants) != 4 || value(snap.Tenants["1"], "messages") != 5 || value(snap.Tenants["2"], "messages") != 7 {
		t.Errorf("tenants = %v, want 1, 2, blob and wide", snap.Tenants)
	}
	// The oversized hashes' tenants are there, their usage unknown (not 0).
	for _, id := range []string{"blob", "wide"} {
		if r, ok := snap.Tenants[id].HashUnreadable(); !ok || r != usage.ReasonOversizedHash {
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
	s = newStore(t, srv.Addr(), WithMaxReplyBytes(0))
	if _, _, skipped, err := s.ReadTenant(context.Background(), "usage:blob:202611"); err != nil || skipped[usage.ReasonInvalidValue] != 1 {
		t.Errorf("unbounded ReadTenant(blob) = skipped %v, %v", skipped, err)
	}
}

// A reply that is not a usage hash over the bound fails its call with an
// error that names the bound.
func TestInfoOverTheBound(t *testing.T) {
	srv := testserver.StartRedis(t)
	s := newStore(t, srv.Addr(), WithMaxReplyBytes(64))
	err := s.Info(context.Background()).Err
	if err == nil || !isOversized(err) && !strings.Contains(err.Error(), oversizedPrefix) {
		t.Errorf("Info with a 64-byte bound: %v, want the oversized error", err)
	}
	if !bytes.Contains([]byte(fmt.Sprint(err)), []byte("64 bytes")) {
		t.Errorf("error %v does not name the bound", err)
	}
}

// TestBoundedConnRandomStreams checks random replies, read in random
// chunks, against what the bound should make of them.
func TestBoundedConnRandomStreams(t *testing.T) {
	const limit = 48
	rng := rand.New(rand.NewPCG(1, 2))
	var reply func(depth int) string
	reply = func(depth int) string {
		switch k := rng.IntN(6); {
		case k == 0:
			return ":" + fmt.Sprint(rng.IntN(1000)) + "\r\n"
		case k == 1:
			return "$-1\r\n"
		case k == 2 && depth < 3:
			n := rng.IntN(4)
			s := fmt.Sprintf("*%d\r\n", n)
			for range n {
				s += reply(depth + 1)
			}
			return s
		default:
			n := rng.IntN(40)
			return fmt.Sprintf("$%d\r\n%s\r\n", n, strings.Repeat("x", n))
		}
	}
	stub := fmt.Sprintf("-%s reply of more than %d bytes (or a batch of more than %d) skipped\r\n", oversizedPrefix, limit, maxPipelineReplies*limit)
	for round := range 300 {
		var in, want strings.Builder
		exchange := 0
		for range rng.IntN(12) {
			r := reply(0)
			in.WriteString(r)
			if len(r) <= limit && exchange+len(r) <= maxPipelineReplies*limit {
				exchange += len(r)
				want.WriteString(r)
			} else {
				want.WriteString(stub)
			}
		}
		c := newBoundedConn(&chunkConn{r: strings.NewReader(in.String()), chunk: 1 + rng.IntN(70)}, limit)
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Fatalf("round %d: read %q from %q, want %q", round, got, in.String(), want.String())
		}
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
	c := newCluster(t, cl.Addrs(), WithMaxReplyBytes(16<<10))
	snap, err := c.ReadUsage(context.Background(), pattern, "202611")
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Skipped[usage.ReasonOversizedHash]; got != 3 {
		t.Errorf("oversized hashes = %d, want 3 (skipped: %v)", got, snap.Skipped)
	}
	if len(snap.Tenants) != 33 || value(snap.Tenants["29"], "messages") != 29 {
		t.Errorf("%d tenants (29: %v), want 33", len(snap.Tenants), snap.Tenants["29"])
	}
	for n, tenant := range blobs {
		if r, ok := snap.Tenants[tenant].HashUnreadable(); !ok || r != usage.ReasonOversizedHash {
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
