package mirror

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

const (
	thisPeriod = "202611"
	lastPeriod = "202610"
)

func newMirror(t *testing.T, addr string, opts ...Option) (*Mirror, *read.Reader) {
	t.Helper()
	s := newStore(t, addr, conn.WithBatchSize(7)) // small batches: several round trips per re-read
	m := New(s, pattern, append([]Option{WithResyncInterval(0)}, opts...)...)
	t.Cleanup(func() { m.Close() })
	return m, s
}

// readUsage is a scrape's read with a bounded deadline.
func readUsage(t *testing.T, r billing.Store, periodID string) *usage.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := r.ReadUsage(ctx, pattern, periodID)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func fullReads(m *Mirror, reason string) int {
	return int(m.fullReads[reason].Load())
}

// clientIDs returns the ids of the mirror's invalidation (pub/sub) and
// tracking connections, from CLIENT LIST.
func clientIDs(t *testing.T, srv *testserver.Redis) (sub, trk string) {
	t.Helper()
	list, err := redis.String(srv.Do("CLIENT", "LIST"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		var id, flags string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(f, "flags="); ok {
				flags = v
			}
		}
		switch {
		case strings.Contains(flags, "P"):
			sub = id
		case strings.Contains(flags, "t"):
			trk = id
		}
	}
	if sub == "" || trk == "" {
		t.Fatalf("tracking connections not found in CLIENT LIST:\n%s", list)
	}
	return sub, trk
}

// writer applies a fixed-seed mix of every kind of change a backend (or a
// hostile neighbour) makes to the keyspace.
type writer struct {
	rng *rand.Rand
	c   redis.Conn
}

func (w *writer) key() string {
	p := thisPeriod
	if w.rng.IntN(4) == 0 {
		p = lastPeriod
	}
	return "usage:" + fmt.Sprint(w.rng.IntN(120)) + ":" + p
}

func (w *writer) step() error {
	key := w.key()
	var err error
	switch op := w.rng.IntN(100); {
	case op < 40:
		_, err = w.c.Do("HINCRBY", key, []string{"messages", "storage", "users"}[w.rng.IntN(3)], w.rng.IntN(50))
	case op < 50:
		_, err = w.c.Do("HSET", key, "field"+fmt.Sprint(w.rng.IntN(3)), w.rng.IntN(9))
	case op < 53:
		_, err = w.c.Do("HSET", key, "messages", "-1") // invalid value
	case op < 55:
		_, err = w.c.Do("HSET", key, "bad\x01field", 1) // invalid field
	case op < 63:
		_, err = w.c.Do("HDEL", key, "messages", "field0")
	case op < 70:
		_, err = w.c.Do("DEL", key)
	case op < 75:
		_, err = w.c.Do("PEXPIRE", key, 5+w.rng.IntN(30))
	case op < 80:
		to := w.key()
		if w.rng.IntN(3) == 0 {
			to = "other:" + to
		}
		if _, err = w.c.Do("RENAME", key, to); err != nil && strings.Contains(err.Error(), "no such key") {
			err = nil
		}
	case op < 85:
		_, err = w.c.Do("HSET", "other:"+key, "messages", 1) // another prefix
	case op < 88:
		_, err = w.c.Do("SET", key, "x") // wrong type
	case op < 91:
		_, err = w.c.Do("HSET", "usage:bad:"+fmt.Sprint(w.rng.IntN(5)), "messages", 1) // malformed
	case op < 93:
		_, err = w.c.Do("DEL", "usage:bad:"+fmt.Sprint(w.rng.IntN(5)))
	case op < 95:
		_, err = w.c.Do("SET", "usage:x", "1") // matches the prefix, not the glob
	default:
		_, err = w.c.Do("HSET", "usage:new"+fmt.Sprint(w.rng.IntN(1000))+":"+thisPeriod, "messages", 1) // a new tenant
	}
	if err != nil && strings.Contains(err.Error(), "WRONGTYPE") {
		err = nil
	}
	return err
}

// settle waits out the TTLs given and SCANs the whole keyspace, which
// deletes every key past its TTL (sending its invalidation) before a
// checkpoint compares: an expired key that Redis has not deleted yet is
// still in the mirror, and may be deleted between the two reads compared.
func (w *writer) settle() error {
	time.Sleep(40 * time.Millisecond)
	cursor := "0"
	for {
		reply, err := redis.Values(w.c.Do("SCAN", cursor, "COUNT", 1000))
		if err != nil {
			return err
		}
		if cursor, err = redis.String(reply[0], nil); err != nil || cursor == "0" {
			return err
		}
	}
}

func TestMirrorEquivalenceUnderLoad(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, s := newMirror(t, srv.Addr())
	w := &writer{rng: rand.New(rand.NewPCG(13, 1)), c: srv.Conn()}
	defer w.c.Close()
	for range 300 {
		if err := w.step(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.settle(); err != nil {
		t.Fatal(err)
	}
	testserver.SameSnapshot(t, "seed", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))

	// Scrapes run all along, while the writer writes.
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := m.ReadUsage(ctx, pattern, thisPeriod); err != nil {
				t.Error(err)
			}
			cancel()
		}
	})
	for cp := range 6 {
		for range 500 {
			if err := w.step(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.settle(); err != nil {
			t.Fatal(err)
		}
		testserver.SameSnapshot(t, fmt.Sprintf("checkpoint %d", cp), readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
	}
	close(stop)
	scrapes.Wait()
	if n := fullReads(m, reasonStart); n != 1 {
		t.Errorf("full reads at start = %d, want 1", n)
	}
	for _, r := range fullReadReasons[1:] {
		if n := fullReads(m, r); n != 0 {
			t.Errorf("full reads for %s = %d, want 0: the mirror was not kept current", r, n)
		}
	}
	if m.rereadTotal.Load() == 0 || m.invalidated.Load() == 0 {
		t.Errorf("re-read %d keys after %d invalidations, want some", m.rereadTotal.Load(), m.invalidated.Load())
	}
}

func TestMirrorReadYourWrites(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, _ := newMirror(t, srv.Addr())
	c := srv.Conn()
	defer c.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	readUsage(t, m, thisPeriod)
	for i := range 500 {
		id := fmt.Sprint(rng.IntN(50))
		v, err := redis.Int64(c.Do("HINCRBY", "usage:"+id+":"+thisPeriod, "messages", 1+rng.IntN(3)))
		if err != nil {
			t.Fatal(err)
		}
		if got := value(readUsage(t, m, thisPeriod).Counters(id), "messages"); got != v {
			t.Fatalf("write %d: tenant %s messages = %d right after HINCRBY answered %d", i, id, got, v)
		}
	}
	if n := fullReads(m, reasonStart); n != 1 {
		t.Errorf("full reads = %d, want the first only", n)
	}
}

// TestMirrorReadYourWritesWhileReading: a read that begins after a write
// was acknowledged has it, whatever read is in flight when it begins: the
// mirror's lock orders them, and each takes its own barrier.
func TestMirrorReadYourWritesWhileReading(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, _ := newMirror(t, srv.Addr())
	c := srv.Conn()
	defer c.Close()
	const key = "usage:1:" + thisPeriod
	readUsage(t, m, thisPeriod) // seeded
	stop := make(chan struct{})
	var reads sync.WaitGroup
	for range 2 {
		reads.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := m.ReadUsage(ctx, pattern, thisPeriod); err != nil {
					t.Error(err)
				}
				cancel()
			}
		})
	}
	defer func() { close(stop); reads.Wait() }()
	for i := range 200 {
		v, err := redis.Int64(c.Do("HINCRBY", key, "messages", 1))
		if err != nil {
			t.Fatal(err)
		}
		if got := value(readUsage(t, m, thisPeriod).Counters("1"), "messages"); got != v {
			t.Fatalf("write %d: messages = %d right after HINCRBY answered %d", i, got, v)
		}
	}
}

// TestMirrorUnreadable: a key re-read by the mirror is decoded as a full
// read decodes it, so a usage key turned into another type, or a field
// that stops parsing, is an unreadable marker on its tenant (never a 0 or
// a vanished tenant), and readable again once rewritten.
func TestMirrorUnreadable(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, s := newMirror(t, srv.Addr())
	key := "usage:t1:" + thisPeriod
	srv.HSet(key, "messages", 5)
	srv.HSet("usage:t2:"+thisPeriod, "messages", 6)
	readUsage(t, m, thisPeriod) // seed
	steps := []struct {
		name   string
		write  []any
		reason usage.Reason // "" for readable
		want   int64
	}{
		{"another type", []any{"SET", key, "x"}, usage.ReasonWrongType, 0},
		{"a hash again", []any{"HSET", key, "messages", 9}, "", 9},
		{"an invalid value", []any{"HSET", key, "messages", "-3"}, usage.ReasonInvalidValue, 0},
	}
	for _, st := range steps {
		if st.name == "a hash again" {
			srv.Do("DEL", key) // HSET on a string is refused
		}
		srv.Do(st.write[0].(string), st.write[1:]...)
		got := readUsage(t, m, thisPeriod)
		testserver.SameSnapshot(t, st.name, got, readUsage(t, s, thisPeriod))
		c, ok := got.Tenants.Lookup("t1")
		if !ok {
			t.Fatalf("%s: tenant t1 missing from the mirror's read", st.name)
		}
		reason, unreadable := c.Unreadable("messages")
		v, _ := c.Value("messages")
		if unreadable != (st.reason != "") || reason != st.reason || v != st.want {
			t.Errorf("%s: messages = %d, unreadable %v (%q); want %d, reason %q", st.name, v, unreadable, reason, st.want, st.reason)
		}
	}
	if n := fullReads(m, reasonStart); n != 1 || m.rereadTotal.Load() == 0 {
		t.Errorf("full reads = %d, re-read %d keys: want the seed only and re-reads", n, m.rereadTotal.Load())
	}
}

// TestMirrorLoss breaks the mirror's proof of currency in every way the
// issue lists; each time, the next read has the exact numbers.
func TestMirrorLoss(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reasons []string // any of them
		breakIt func(t *testing.T, srv *testserver.Redis)
	}{
		{"flushall", []string{reasonFlush}, func(t *testing.T, srv *testserver.Redis) {
			srv.Do("FLUSHALL")
		}},
		{"flushdb of another database", []string{reasonFlush}, func(t *testing.T, srv *testserver.Redis) {
			c := srv.Conn(redis.DialDatabase(3))
			defer c.Close()
			if _, err := c.Do("FLUSHDB"); err != nil {
				t.Fatal(err)
			}
		}},
		{"restart", []string{reasonConnectionLost}, func(t *testing.T, srv *testserver.Redis) {
			srv.Stop()
			srv.Start()
		}},
		{"kill invalidation connection", []string{reasonConnectionLost, reasonRedirBroken}, func(t *testing.T, srv *testserver.Redis) {
			sub, _ := clientIDs(t, srv)
			srv.Do("CLIENT", "KILL", "ID", sub)
		}},
		{"kill tracking connection", []string{reasonConnectionLost}, func(t *testing.T, srv *testserver.Redis) {
			_, trk := clientIDs(t, srv)
			srv.Do("CLIENT", "KILL", "ID", trk)
		}},
		{"swapdb", []string{reasonSwapdb}, func(t *testing.T, srv *testserver.Redis) {
			c := srv.Conn(redis.DialDatabase(1))
			defer c.Close()
			for i := range 30 {
				if _, err := c.Do("HSET", fmt.Sprintf("usage:%d:%s", 100+i, thisPeriod), "messages", i); err != nil {
					t.Fatal(err)
				}
			}
			srv.Do("SWAPDB", 0, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.StartRedis(t)
			m, s := newMirror(t, srv.Addr())
			for i := range 20 {
				srv.HSet(fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", i)
			}
			readUsage(t, m, thisPeriod)
			tc.breakIt(t, srv)
			// Writes after the break, and one key that no read has seen.
			srv.HSet("usage:3:"+thisPeriod, "messages", 1000)
			srv.HSet("usage:new:"+thisPeriod, "users", 4)
			srv.HSet("usage:old:"+lastPeriod, "users", 4)
			testserver.SameSnapshot(t, "after "+tc.name, readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
			n := 0
			for _, r := range tc.reasons {
				n += fullReads(m, r)
			}
			if n != 1 {
				t.Errorf("full reads for %v = %d, want 1", tc.reasons, n)
			}
			// And the new pair keeps the mirror current.
			srv.HSet("usage:4:"+thisPeriod, "messages", 2000)
			srv.Do("DEL", "usage:5:"+thisPeriod)
			testserver.SameSnapshot(t, "then", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
			if n := fullReads(m, reasonStart); n != 1 {
				t.Errorf("start full reads = %d, want 1", n)
			}
		})
	}
}

// TestMirrorClientPause: writes held by CLIENT PAUSE are acknowledged after
// it ends, and a read that follows has them.
func TestMirrorClientPause(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, s := newMirror(t, srv.Addr())
	srv.HSet("usage:1:"+thisPeriod, "messages", 1)
	readUsage(t, m, thisPeriod)
	srv.Do("CLIENT", "PAUSE", 300, "ALL")
	acked := make(chan error, 1)
	go func() {
		c := srv.Conn()
		defer c.Close()
		_, err := c.Do("HINCRBY", "usage:1:"+thisPeriod, "messages", 41)
		acked <- err
	}()
	readUsage(t, m, thisPeriod) // waits out the pause, or re-seeds after it
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	got := readUsage(t, m, thisPeriod)
	if v := value(got.Counters("1"), "messages"); v != 42 {
		t.Errorf("messages = %d after the paused write was acknowledged, want 42", v)
	}
	testserver.SameSnapshot(t, "after pause", got, readUsage(t, s, thisPeriod))
}

// TestMirrorPeriodRollover: a read of another period is a full read of it.
func TestMirrorPeriodRollover(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, s := newMirror(t, srv.Addr())
	srv.HSet("usage:1:"+lastPeriod, "messages", 7)
	srv.HSet("usage:1:"+thisPeriod, "messages", 1)
	testserver.SameSnapshot(t, "before", readUsage(t, m, lastPeriod), readUsage(t, s, lastPeriod))
	srv.HSet("usage:1:"+lastPeriod, "messages", 8)
	testserver.SameSnapshot(t, "after rollover", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
	srv.HSet("usage:1:"+thisPeriod, "messages", 2)
	testserver.SameSnapshot(t, "next", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
	if n := fullReads(m, reasonPeriod); n != 1 {
		t.Errorf("period full reads = %d, want 1", n)
	}
}

// TestMirrorIdle: with nothing changed, a read sends Redis two commands
// (the barrier) and no SCAN or HGETALL.
func TestMirrorIdle(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, _ := newMirror(t, srv.Addr())
	for i := range 50 {
		srv.HSet(fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", i)
	}
	readUsage(t, m, thisPeriod)
	total := func() int {
		n := 0
		for _, cmd := range []string{"scan", "hgetall", "exists", "ping", "client|trackinginfo"} {
			n += srv.CommandCalls(cmd)
		}
		return n
	}
	before, scans := total(), srv.CommandCalls("scan")
	const reads = 5
	for range reads {
		readUsage(t, m, thisPeriod)
	}
	if n := total() - before; n != 2*reads {
		t.Errorf("%d idle reads sent %d commands, want %d", reads, n, 2*reads)
	}
	if srv.CommandCalls("scan") != scans {
		t.Error("an idle read scanned")
	}
}

// TestMirrorManyInvalidationsBetweenReads: invalidations are bounded one
// message at a time, not by their sum between two reads. With replies
// bounded to 1 KiB (so 8 KiB for one exchange of a command connection),
// 1,000 keys changed between two reads bring about 80 KB of invalidation
// messages; the next read re-reads them from the mirror, exactly, without
// losing the tracking pair to a full read.
func TestMirrorManyInvalidationsBetweenReads(t *testing.T) {
	srv := testserver.StartRedis(t)
	const tenants = 1000
	for i := range tenants {
		srv.HSet(fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", i)
	}
	s := newStore(t, srv.Addr(), conn.WithMaxReplyBytes(1024), conn.WithScanCount(10), conn.WithBatchSize(5))
	m := New(s, pattern, WithResyncInterval(0))
	t.Cleanup(func() { m.Close() })
	readUsage(t, m, thisPeriod)
	c := srv.Conn()
	defer c.Close()
	for i := range tenants { // one command at a time: one invalidation message each
		if _, err := c.Do("HINCRBY", fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", 1000); err != nil {
			t.Fatal(err)
		}
	}
	got := readUsage(t, m, thisPeriod)
	if n := fullReads(m, reasonConnectionLost); n != 0 {
		t.Fatalf("%d full reads for a lost tracking pair after %d invalidations, want 0", n, tenants)
	}
	if n := m.rereadLast.Load(); n != tenants {
		t.Errorf("re-read %d keys, want %d", n, tenants)
	}
	want := readUsage(t, s, thisPeriod)
	if !maps.EqualFunc(maps.Collect(got.Tenants.All()), maps.Collect(want.Tenants.All()), usage.Counters.Equal) {
		t.Errorf("mirror differs from a full read after %d changes", tenants)
	}
	for i := range tenants {
		if v := value(got.Counters(fmt.Sprint(i)), "messages"); v != int64(i+1000) {
			t.Fatalf("tenant %d: messages %d, want %d", i, v, i+1000)
		}
	}
}

// TestMirrorFallback: where tracking is refused, reads are full reads with
// exact numbers, said once in the mode.
func TestMirrorFallback(t *testing.T) {
	srv := testserver.StartRedis(t)
	scanACL := []any{"on", ">pw", "resetkeys", "%R~usage:*", "resetchannels", "-@all", "+scan", "+hgetall", "+info", "+ping", "+client|setname"}
	// The README's least-privilege ACL of each mode.
	srv.Do("ACL", append([]any{"SETUSER", "scanonly"}, scanACL...)...)
	srv.Do("ACL", append([]any{"SETUSER", "tracker"}, append(scanACL, "+exists", "+client|id", "+client|tracking",
		"+client|trackinginfo", "+subscribe", "&__redis__:invalidate")...)...)
	srv.Do("ACL", append([]any{"SETUSER", "nosubscribe"}, append(scanACL, "+exists", "+client|id", "+client|tracking")...)...)
	srv.HSet("usage:1:"+thisPeriod, "messages", 5)
	srv.Do("SET", "usage:2:"+thisPeriod, "x")

	for _, tc := range []struct {
		name, user, pattern string
		want                string
	}{
		{"no tracking rights", "scanonly", usage.DefaultKeyPattern, ModeScan},
		{"no subscribe rights", "nosubscribe", usage.DefaultKeyPattern, ModeScan},
		{"empty literal prefix", "tracker", "{tenant_id}:usage:{period}", ModeScan},
		{"tracking rights", "tracker", usage.DefaultKeyPattern, ModeTrack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, "redis://"+tc.user+":pw@"+srv.Addr())
			kp := usage.MustParseKeyPattern(tc.pattern)
			m := New(s, kp, WithResyncInterval(0))
			defer m.Close()
			for i := range 3 {
				srv.HSet("usage:1:"+thisPeriod, "messages", 5+i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				got, err := m.ReadUsage(ctx, kp, thisPeriod)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.ReadUsage(context.Background(), kp, thisPeriod)
				if err != nil {
					t.Fatal(err)
				}
				testserver.SameSnapshot(t, tc.name, got, want)
			}
			if m.mode() != tc.want {
				t.Errorf("mode = %s, want %s", m.mode(), tc.want)
			}
			unavailable := testutil.ToFloat64(onlyDesc(m, "billing_redis_tracking_unavailable"))
			if want := map[string]float64{ModeScan: 1, ModeTrack: 0}[tc.want]; unavailable != want {
				t.Errorf("billing_redis_tracking_unavailable = %v, want %v", unavailable, want)
			}
		})
	}
}

// TestMirrorTrackingRetry: a fallback on an ACL refusal ends, once the
// grants are there, at the first read a retry interval later.
func TestMirrorTrackingRetry(t *testing.T) {
	srv := testserver.StartRedis(t)
	scanACL := []any{"on", ">pw", "resetkeys", "%R~usage:*", "resetchannels", "-@all", "+scan", "+hgetall", "+info", "+ping", "+client|setname"}
	srv.Do("ACL", append([]any{"SETUSER", "u"}, scanACL...)...)
	srv.HSet("usage:1:"+thisPeriod, "messages", 5)
	s := newStore(t, "redis://u:pw@"+srv.Addr())
	m := New(s, pattern, WithResyncInterval(0))
	defer m.Close()
	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	setClock(t, func() time.Time { return clock })

	read := func(want string) {
		t.Helper()
		srv.HSet("usage:1:"+thisPeriod, "messages", clock.Unix())
		testserver.SameSnapshot(t, "read", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
		if m.mode() != want {
			t.Fatalf("mode = %s, want %s", m.mode(), want)
		}
	}
	read(ModeScan)
	srv.Do("ACL", "SETUSER", "u", "+exists", "+client|id", "+client|tracking", "+client|trackinginfo", "+subscribe", "&__redis__:invalidate")
	clock = clock.Add(trackingRetry - time.Second)
	read(ModeScan)
	clock = clock.Add(time.Second)
	read(ModeTrack)
	read(ModeTrack)
	if n := fullReads(m, reasonStart); n != 1 {
		t.Errorf("start full reads = %d, want 1", n)
	}

	// Grants taken away again: back to full reads, and retried.
	srv.Do("ACL", "SETUSER", "u", "-client|id")
	sub, _ := clientIDs(t, srv)
	srv.Do("CLIENT", "KILL", "ID", sub)
	read(ModeScan)
	clock = clock.Add(trackingRetry)
	read(ModeScan)
}

func TestDenied(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("CLIENT: %w", redis.Error("NOPERM User u has no permissions to run the 'client|id' command")), true},
		{redis.Error("NOAUTH Authentication required."), true},
		{redis.Error("WRONGPASS invalid username-password pair or user is disabled."), true},
		{redis.Error("ERR unknown command 'CLIENT', with args beginning with: 'ID'"), false},
		{redis.Error("ERR Unknown subcommand or wrong number of arguments for 'TRACKING'"), false},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), false},
	} {
		if got := denied(tc.err); got != tc.want {
			t.Errorf("denied(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// failingSend is a connection whose writes fail.
type failingSend struct{ redis.Conn }

var errSend = fmt.Errorf("send refused")

func (failingSend) Send(string, ...any) error { return errSend }

// TestBarrierSendFails: a barrier whose PING cannot be sent reports it at once.
func TestBarrierSendFails(t *testing.T) {
	srv := testserver.StartRedis(t)
	s := newStore(t, srv.Addr(), conn.WithTimeouts(time.Second, 5*time.Second, time.Second))
	c := srv.Conn()
	defer c.Close()
	p := &trackingPair{sub: failingSend{c}, trk: c, pongs: map[string]chan struct{}{}}
	reason, err := p.barrier(context.Background(), s.Settings(), "")
	if reason != reasonConnectionLost || !errors.Is(err, errSend) {
		t.Errorf("barrier = %q, %v; want %q and the send error", reason, err, reasonConnectionLost)
	}
}

// TestMirrorResync: the self-check finds what differs, says how much, and
// replaces the mirror; with writes going on meanwhile it finds nothing.
func TestMirrorResync(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, s := newMirror(t, srv.Addr())
	for i := range 100 {
		srv.HSet(fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", i)
	}
	readUsage(t, m, thisPeriod)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Writes during the check: changed keys are no divergence.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		c := srv.Conn()
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Do("HINCRBY", fmt.Sprintf("usage:%d:%s", i%100, thisPeriod), "messages", 1); err != nil {
				t.Error(err)
				return
			}
		}
	})
	n, err := m.selfCheck(ctx)
	close(stop)
	wg.Wait()
	if err != nil || n != 0 {
		t.Fatalf("Resync = %d, %v; want 0 divergent keys", n, err)
	}
	testserver.SameSnapshot(t, "after resync", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))

	// A mirror gone wrong (as a bug would make it): two keys.
	m.mu.Lock()
	m.nodes[0].state.put("5", &keyEntry{counters: usage.CountersOf(map[string]int64{"messages": 999})})
	m.nodes[0].state.setOther(m.pattern, "usage:9:"+lastPeriod, true)
	m.mu.Unlock()
	if n, err := m.selfCheck(ctx); err != nil || n != 2 {
		t.Fatalf("Resync = %d, %v; want 2 divergent keys", n, err)
	}
	if got := testutil.ToFloat64(onlyDesc(m, "billing_redis_mirror_divergent_keys")); got != 2 {
		t.Errorf("billing_redis_mirror_divergent_keys = %v, want 2", got)
	}
	testserver.SameSnapshot(t, "after repair", readUsage(t, m, thisPeriod), readUsage(t, s, thisPeriod))
	if n := fullReads(m, reasonResync); n != 2 {
		t.Errorf("resync full reads = %d, want 2", n)
	}
}

// TestMirrorMetrics checks the exported families after a few reads.
func TestMirrorMetrics(t *testing.T) {
	srv := testserver.StartRedis(t)
	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	m, _ := newMirror(t, srv.Addr())
	setClock(t, func() time.Time { return clock })
	srv.HSet("usage:1:"+thisPeriod, "messages", 1)
	readUsage(t, m, thisPeriod)
	srv.HSet("usage:1:"+thisPeriod, "messages", 2)
	srv.HSet("usage:2:"+thisPeriod, "messages", 2)
	readUsage(t, m, thisPeriod)
	clock = clock.Add(90 * time.Second)
	for name, want := range map[string]float64{
		"billing_redis_mirror_reread_keys":       2,
		"billing_redis_mirror_reread_keys_total": 2,
		"billing_redis_invalidations_total":      2,
		"billing_redis_mirror_age_seconds":       90,
		"billing_redis_mirror_divergent_keys":    0,
		"billing_redis_tracking_unavailable":     0,
	} {
		if got := testutil.ToFloat64(onlyDesc(m, name)); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n := testutil.CollectAndCount(m, "billing_redis_full_reads_total"); n != len(fullReadReasons) {
		t.Errorf("billing_redis_full_reads_total has %d series, want %d", n, len(fullReadReasons))
	}
	scan := New(newStore(t, srv.Addr()), pattern, WithScanMode())
	defer scan.Close()
	if n := testutil.CollectAndCount(scan); n != 2 {
		t.Errorf("scan mode exports %d series, want 2 (mode, unavailable)", n)
	}
}

// onlyDesc is the metrics of c named name.
func onlyDesc(c prometheus.Collector, name string) prometheus.Collector {
	return filtered{c, name}
}

type filtered struct {
	c    prometheus.Collector
	name string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.c.Collect(all); close(all) }()
	for metric := range all {
		if strings.Contains(metric.Desc().String(), `fqName: "`+f.name+`"`) {
			ch <- metric
		}
	}
}

// TestMirrorLendsItsTables: a snapshot held is never changed by later reads
// (the mirror copies its table before changing it), and once released the
// table is the mirror's again: the next change is made in place, with no
// copy of every tenant. A release that comes after the mirror copied the
// table (a late one) does not let a newer snapshot's table be changed.
func TestMirrorLendsItsTables(t *testing.T) {
	srv := testserver.StartRedis(t)
	m, _ := newMirror(t, srv.Addr())
	for i := range 20 {
		srv.HSet(fmt.Sprintf("usage:%d:%s", i, thisPeriod), "messages", i)
	}
	same := func(a, b usage.Tenants) bool {
		return a.(tenantView).t == b.(tenantView).t
	}
	c := srv.Conn()
	defer c.Close()
	bump := func(id string) int64 {
		t.Helper()
		v, err := redis.Int64(c.Do("HINCRBY", "usage:"+id+":"+thisPeriod, "messages", 100))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	held := readUsage(t, m, thisPeriod)
	heldMap, was := held.Tenants, value(held.Counters("3"), "messages")
	bump("3")
	next := readUsage(t, m, thisPeriod)
	if same(next.Tenants, heldMap) {
		t.Fatal("a change while a snapshot held the map was made in it")
	}
	if got, _ := heldMap.Lookup("3"); value(got, "messages") != was {
		t.Fatalf("the snapshot held saw tenant 3's messages change: %d, want %d", value(got, "messages"), was)
	}

	nextMap := next.Tenants
	next.Release()
	if next.Tenants != nil || next.Types != nil {
		t.Error("a released snapshot still holds the maps")
	}
	v := bump("4")
	after := readUsage(t, m, thisPeriod)
	if !same(after.Tenants, nextMap) {
		t.Error("a change after the snapshot was released copied the map")
	}
	if got := value(after.Counters("4"), "messages"); got != v {
		t.Errorf("tenant 4 messages = %d, want %d", got, v)
	}

	// held is released late, after its map was copied: it gives back
	// nothing of after's, which is still held.
	held.Release()
	held.Release() // twice: harmless
	afterMap, was := after.Tenants, value(after.Counters("5"), "messages")
	bump("5")
	readUsage(t, m, thisPeriod)
	if got, _ := afterMap.Lookup("5"); value(got, "messages") != was {
		t.Errorf("a late release let a held snapshot change: tenant 5 messages = %d, want %d", value(got, "messages"), was)
	}
}
