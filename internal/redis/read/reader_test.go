package read

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

var pattern = usage.MustParseKeyPattern(usage.DefaultKeyPattern)

func newStore(t *testing.T, addr string, opts ...conn.Option) *Reader {
	t.Helper()
	target, err := conn.ParseTarget(addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReadUsage(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.HSet("usage:1:202611", "messages", 4250, "storage", 1048576, "users", 3, "whatsappSessions", 1)
	srv.HSet("usage:2:202611", "messages", 10, "apiCalls", 7)                  // unknown field: its own metric type
	srv.HSet("usage:3:202610", "messages", 999)                                // previous period
	srv.HSet("usage:4:202611", "messages", "-3", "storage", "1.5", "users", 2) // bad values next to a good one
	srv.HSet("usage:5:202611", "messages", "99999999999999999999")             // beyond int64
	srv.Do("SET", "usage:6:202611", "not a hash")                              // wrong type
	srv.Do("RPUSH", "usage:7:202611", "x")                                     // wrong type
	srv.HSet("usage:x:2026-11", "messages", 1)                                 // malformed period
	srv.HSet("usage:bad\nid:202611", "messages", 1)                            // control character in the id
	srv.HSet("usage:ação ✓:202611", "messages", 5)                             // unicode id
	srv.HSet(`usage:o"brien:202611`, "messages", 6)                            // quote in the id
	srv.HSet("usage:a:b:202611", "messages", 8)                                // separator in the id
	srv.HSet("usage:8:202611", "bad\xfffield", 1, "messages", 2)               // invalid UTF-8 field name
	srv.HSet("other:9:202611", "messages", 1)                                  // not a usage key at all

	wantTenants := map[string]usage.Counters{
		"1":       usage.CountersOf(map[string]int64{"messages": 4250, "storage": 1048576, "users": 3, "whatsappSessions": 1}),
		"2":       usage.CountersOf(map[string]int64{"messages": 10, "apiCalls": 7}),
		"4":       unreadable(usage.CountersOf(map[string]int64{"users": 2}), usage.ReasonInvalidValue, "messages", "storage"),
		"5":       unreadable(usage.CountersOf(map[string]int64{}), usage.ReasonInvalidValue, "messages"),
		"6":       usage.UnreadableHash(usage.ReasonWrongType), // known, its usage unknown
		"7":       usage.UnreadableHash(usage.ReasonWrongType),
		"ação ✓":  usage.CountersOf(map[string]int64{"messages": 5}),
		`o"brien`: usage.CountersOf(map[string]int64{"messages": 6}),
		"a:b":     usage.CountersOf(map[string]int64{"messages": 8}),
		"8":       usage.CountersOf(map[string]int64{"messages": 2}),
	}
	wantSkipped := map[usage.Reason]int{
		usage.ReasonMalformedKey: 2,
		usage.ReasonWrongType:    2,
		usage.ReasonInvalidValue: 3,
		usage.ReasonInvalidField: 1,
	}
	// Every usage key that parses, all periods: 1,2,3,4,5,6,7,ação,o"brien,a:b,8.
	const wantKeys = 11

	// Small scan counts and batches exercise paging and batch boundaries.
	for _, tc := range []struct{ scan, batch int }{{1000, 1000}, {1, 1}, {3, 2}} {
		t.Run("", func(t *testing.T) {
			var mu sync.Mutex
			ops := map[string]int{}
			s := newStore(t, srv.Addr(), conn.WithScanCount(tc.scan), conn.WithBatchSize(tc.batch),
				conn.WithObserver(func(op string, _ time.Duration) { mu.Lock(); ops[op]++; mu.Unlock() }))
			snap, err := s.ReadUsage(context.Background(), pattern, "202611")
			if err != nil {
				t.Fatal(err)
			}
			if snap.Tenants.Len() != len(wantTenants) {
				t.Errorf("tenants = %v, want %v", snap.Tenants, wantTenants)
			}
			for id, want := range wantTenants {
				if got := snap.Counters(id); !got.Equal(want) {
					t.Errorf("tenant %q = %v, want %v", id, got, want)
				}
			}
			if !maps.Equal(snap.Skipped, wantSkipped) {
				t.Errorf("skipped = %v, want %v", snap.Skipped, wantSkipped)
			}
			if snap.Keys != wantKeys {
				t.Errorf("keys = %d, want %d", snap.Keys, wantKeys)
			}
			mu.Lock()
			defer mu.Unlock()
			if ops["scan"] == 0 || ops["hgetall"] == 0 {
				t.Errorf("operations observed = %v, want scan and hgetall", ops)
			}
		})
	}
}

func TestReadUsageNeverUsesKEYS(t *testing.T) {
	srv := testserver.StartRedis(t)
	for i := range 50 {
		srv.HSet("usage:"+string(rune('a'+i%26))+strings.Repeat("x", i)+":202611", "messages", i)
	}
	s := newStore(t, srv.Addr(), conn.WithScanCount(10), conn.WithBatchSize(7))
	if _, err := s.ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	if n := srv.CommandCalls("keys"); n != 0 {
		t.Errorf("KEYS called %d times", n)
	}
	if n := srv.CommandCalls("scan"); n < 5 {
		t.Errorf("SCAN called %d times for 50 keys with COUNT 10", n)
	}
}

func TestReadUsageRedisDown(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.HSet("usage:1:202611", "messages", 1)
	s := newStore(t, srv.Addr())
	if _, err := s.ReadUsage(context.Background(), pattern, "202611"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if snap, err := s.ReadUsage(ctx, pattern, "202611"); err == nil {
		t.Fatalf("read from a stopped Redis succeeded: %+v", snap)
	}
	srv.Start()
	srv.HSet("usage:1:202611", "messages", 2)
	snap, err := s.ReadUsage(context.Background(), pattern, "202611")
	if err != nil {
		t.Fatalf("no recovery after restart: %v", err)
	}
	if got := value(snap.Counters("1"), "messages"); got != 2 {
		t.Errorf("messages after restart = %d, want 2", got)
	}
}

func TestReadUsageHonoursDeadline(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.HSet("usage:1:202611", "messages", 1)
	s := newStore(t, srv.Addr())
	// Block the server, then read with a short deadline: the read must give
	// up with the deadline, not wait for the server.
	go srv.Conn().Do("DEBUG", "SLEEP", "2")
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.ReadUsage(ctx, pattern, "202611")
	if err == nil {
		t.Fatal("read succeeded while Redis slept")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("err = %v, want a deadline error", err)
	}
}

// unreadable returns c with fields marked unreadable for reason: what a
// read returns for fields it had to skip.
func unreadable(c usage.Counters, reason usage.Reason, fields ...string) usage.Counters {
	m := c.Map()
	for _, f := range fields {
		m[f] = usage.UnreadableValue(reason)
	}
	return usage.CountersOf(m)
}

func TestReadTenant(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.HSet("usage:1:202611", "messages", 4250, "users", "x")
	srv.Do("SET", "usage:2:202611", "oops")
	s := newStore(t, srv.Addr())
	cases := []struct {
		key         string
		want        usage.Counters
		found       bool
		wantSkipped map[usage.Reason]int
	}{
		{"usage:1:202611", unreadable(usage.CountersOf(map[string]int64{"messages": 4250}), usage.ReasonInvalidValue, "users"), true, map[usage.Reason]int{usage.ReasonInvalidValue: 1}},
		{"usage:2:202611", usage.UnreadableHash(usage.ReasonWrongType), true, map[usage.Reason]int{usage.ReasonWrongType: 1}},
		{"usage:3:202611", nil, false, map[usage.Reason]int{}},
	}
	for _, tc := range cases {
		got, found, skipped, err := s.ReadTenant(context.Background(), tc.key)
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		if found != tc.found || !got.Equal(tc.want) || !maps.Equal(skipped, tc.wantSkipped) {
			t.Errorf("%s: got %v found=%v skipped=%v; want %v %v %v", tc.key, got, found, skipped, tc.want, tc.found, tc.wantSkipped)
		}
	}
}

func TestInfo(t *testing.T) {
	srv := testserver.StartRedis(t)
	s := newStore(t, srv.Addr())
	info := s.Info(context.Background())
	if info.Err != nil {
		t.Fatal(info.Err)
	}
	fields := info.Fields
	if mem, ok := billing.InfoInt(fields, "used_memory"); !ok || mem <= 0 {
		t.Errorf("used_memory = %d, %v", mem, ok)
	}
	if n, ok := billing.InfoInt(fields, "connected_clients"); !ok || n < 1 {
		t.Errorf("connected_clients = %d, %v", n, ok)
	}
}

func TestPasswordAndUser(t *testing.T) {
	srv := testserver.StartRedis(t, "--requirepass", "s3cret-pw")
	cases := []struct {
		name    string
		addr    string
		opts    []conn.Option
		wantErr bool
	}{
		{"password option", srv.Addr(), []conn.Option{password("s3cret-pw")}, false},
		{"password in URL", "redis://:s3cret-pw@" + srv.Addr(), nil, false},
		{"option overrides URL", "redis://:wrong@" + srv.Addr(), []conn.Option{password("s3cret-pw")}, false},
		{"no password", srv.Addr(), nil, true},
		{"wrong password", srv.Addr(), []conn.Option{password("nope")}, true},
		{"password func", srv.Addr(), []conn.Option{conn.WithPasswordFunc(func() (string, error) { return "s3cret-pw", nil })}, false},
		{"password func overrides URL", "redis://:wrong@" + srv.Addr(),
			[]conn.Option{conn.WithPasswordFunc(func() (string, error) { return "s3cret-pw", nil })}, false},
		{"password func empty: the URL's", "redis://:s3cret-pw@" + srv.Addr(),
			[]conn.Option{conn.WithPasswordFunc(func() (string, error) { return "", nil })}, false},
		{"password func fails", srv.Addr(),
			[]conn.Option{conn.WithPasswordFunc(func() (string, error) { return "", errors.New("file gone") })}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.addr, tc.opts...)
			err := s.Info(context.Background()).Err
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

// password is the option of a fixed password.
func password(p string) conn.Option {
	return conn.WithPasswordFunc(func() (string, error) { return p, nil })
}

// TestMergeLendsItsParts: the merge of several masters' snapshots reads
// their tenants in place, sums what they count, and gives each part back
// once, when it is released itself.
func TestMergeLendsItsParts(t *testing.T) {
	t.Parallel()
	one := usage.CountersOf(map[string]int64{"messages": 1})
	back := 0
	part := func(tenants usage.TenantMap, types usage.TypeCounts) *usage.Snapshot {
		s := usage.NewSnapshot("202611")
		s.Tenants, s.Types, s.Keys, s.Changed = tenants, types, tenants.Len()+1, []string{"x"}
		s.Skipped[usage.ReasonInvalidValue] = 1
		s.Lend(func() { back++ })
		return s
	}
	for _, tc := range []struct {
		name      string
		types     []usage.TypeCounts
		wantTypes usage.TypeCounts
	}{
		{"counted types", []usage.TypeCounts{{"messages": 2}, {"messages": 1}}, usage.TypeCounts{"messages": 3}},
		{"a part without type counts", []usage.TypeCounts{{"messages": 2}, nil}, nil},
	} {
		back = 0
		got := Merge("202611", []*usage.Snapshot{
			part(usage.TenantMap{"1": one, "2": one}, tc.types[0]),
			part(usage.TenantMap{"3": one}, tc.types[1]),
		})
		if got.Tenants.Len() != 3 || got.Keys != 5 || len(got.Changed) != 2 || got.Skipped[usage.ReasonInvalidValue] != 2 {
			t.Errorf("%s: %d tenants, %d keys, changed %v, skipped %v; want 3, 5, two, 2", tc.name, got.Tenants.Len(), got.Keys, got.Changed, got.Skipped)
		}
		if !maps.Equal(got.Types, tc.wantTypes) || (got.Types == nil) != (tc.wantTypes == nil) {
			t.Errorf("%s: types %v, want %v", tc.name, got.Types, tc.wantTypes)
		}
		if c, ok := got.Tenants.Lookup("3"); !ok || c != one {
			t.Errorf("%s: tenant 3 = %v, %v", tc.name, c, ok)
		}
		if back != 0 {
			t.Fatalf("%s: %d parts given back before the merge was released", tc.name, back)
		}
		got.Release()
		got.Release()
		if back != 2 {
			t.Errorf("%s: %d parts given back, want 2", tc.name, back)
		}
	}
}
