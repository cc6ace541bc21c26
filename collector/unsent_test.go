package collector

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestUnsentBudget: parts shared by responses count once, and a body that
// takes the bytes held over the budget gives up the responses that have
// waited longest for their client, never the only one.
func TestUnsentBudget(t *testing.T) {
	shared := make([]byte, 100)
	own := func() []byte { return make([]byte, 10) }
	type step struct {
		admit    string // a response to admit, with the shared part and one of its own
		wrote    string // a response that wrote
		done     string // a response that finished
		failed   bool   // done's write failed
		held     int64
		givenUp  []string          // the responses given up so far
		abandons map[string]uint64 // so far
	}
	for _, tc := range []struct {
		name  string
		max   int64
		steps []step
	}{
		{name: "shared parts count once", max: 1000, steps: []step{
			{admit: "a", held: 110},
			{admit: "b", held: 120},
			{done: "a", held: 110},
			{done: "b", held: 0},
		}},
		{name: "the longest waiting is given up", max: 125, steps: []step{
			{admit: "a", held: 110},
			{admit: "b", held: 120},
			{wrote: "a", held: 120},
			{admit: "c", held: 120, givenUp: []string{"b"}, abandons: map[string]uint64{reasonUnsentBytes: 1}},
			{wrote: "c", held: 120, givenUp: []string{"b"}, abandons: map[string]uint64{reasonUnsentBytes: 1}},
			{admit: "d", held: 120, givenUp: []string{"b", "a"}, abandons: map[string]uint64{reasonUnsentBytes: 2}},
			{done: "b", held: 120, givenUp: []string{"b", "a"}, abandons: map[string]uint64{reasonUnsentBytes: 2}}, // released already
		}},
		{name: "one response alone is written", max: 50, steps: []step{
			{admit: "a", held: 110},
			{admit: "b", held: 110, givenUp: []string{"a"}, abandons: map[string]uint64{reasonUnsentBytes: 1}},
		}},
		{name: "failed writes are counted", max: 0, steps: []step{
			{admit: "a", held: 110},
			{done: "a", failed: true, held: 0, abandons: map[string]uint64{reasonWriteFailed: 1}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnsent(tc.max)
			rs := map[string]*response{}
			var givenUp []string
			for i, s := range tc.steps {
				switch {
				case s.admit != "":
					name := s.admit
					rs[name] = u.admit([][]byte{shared, own()}, func() { givenUp = append(givenUp, name) })
				case s.wrote != "":
					if !u.wrote(rs[s.wrote]) {
						t.Fatalf("step %d: %s given up", i, s.wrote)
					}
				default:
					u.done(rs[s.done], s.failed)
				}
				if u.held != s.held {
					t.Errorf("step %d: %d bytes held, want %d", i, u.held, s.held)
				}
				if strings.Join(givenUp, ",") != strings.Join(s.givenUp, ",") {
					t.Errorf("step %d: given up %v, want %v", i, givenUp, s.givenUp)
				}
				for _, reason := range []string{reasonUnsentBytes, reasonWriteFailed} {
					if u.abandoned[reason] != s.abandons[reason] {
						t.Errorf("step %d: abandoned %s %d, want %d", i, reason, u.abandoned[reason], s.abandons[reason])
					}
				}
			}
			for _, name := range givenUp {
				if u.wrote(rs[name]) {
					t.Errorf("%s was given up but may write on", name)
				}
			}
		})
	}
}

// TestStalledClientsStayWithinTheBudget: clients that ask for /metrics and
// never read hold at most --web.max-unsent-bytes; those that waited
// longest are cut off and counted, and a real scrape gets its whole body.
func TestStalledClientsStayWithinTheBudget(t *testing.T) {
	const tenants, stalled = 5000, 10
	r := testserver.StartRedis(t)
	r.Do("EVAL", `for i=1,tonumber(ARGV[1]) do
		redis.call('HSET','usage:'..i..':202611','messages',i,'storage',i*1000,'users',i%50,'whatsappSessions',1)
	end`, 0, tenants)
	target, err := conn.ParseTarget(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	store, err := read.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc := billing.New(store, billing.WithClock(func() time.Time { return november }))
	serve := func(opts ...HandlerOption) (*Handler, *httptest.Server) {
		h := NewHandler(svc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), opts...)
		s := httptest.NewUnstartedServer(h)
		s.Listener = smallSendBuffers{s.Listener}
		s.Start()
		t.Cleanup(s.Close)
		return h, s
	}
	_, probe := serve()
	size := int64(len(scrapetest.Get(t, nil, probe.URL, nil).Body))

	// Room for three bodies: each stalled client has a read and a body of its own.
	budget := 3*size + size/2
	h, s := serve(WithMaxUnsentBytes(budget), WithMaxTimeout(time.Minute))
	conns := make([]net.Conn, stalled)
	for i := range conns {
		conns[i] = stalledGet(t, s.Listener.Addr().String())
		h.unsent.mu.Lock()
		held := h.unsent.held
		h.unsent.mu.Unlock()
		if held > budget || held < size {
			t.Fatalf("stalled client %d: %d bytes held, want %d..%d", i, held, size, budget)
		}
	}
	res := scrapetest.Get(t, nil, s.URL, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("scrape with %d stalled clients: status %d", stalled, res.Status)
	}
	if got := len(res.Samples("billing_usage")); got != 4*tenants {
		t.Errorf("%d billing_usage series, want %d", got, 4*tenants)
	}
	if n := res.MustValue(t, "billing_exporter_scrapes_abandoned_total", "reason", reasonUnsentBytes); n < stalled-3 || n > stalled-2 {
		t.Errorf("%v stalled responses given up, want %d or %d", n, stalled-3, stalled-2)
	}
	// Read at last, a response given up ends short, the others whole.
	short := 0
	for _, c := range conns {
		if n, _ := io.Copy(io.Discard, c); n < size {
			short++
		}
	}
	t.Logf("%d of %d stalled responses given up, with a budget of %d bytes for %d-byte bodies", short, stalled, budget, size)
	res = scrapetest.Get(t, nil, s.URL, nil)
	for reason, want := range map[string]int{reasonUnsentBytes: short, reasonWriteFailed: 0} {
		if got := res.MustValue(t, "billing_exporter_scrapes_abandoned_total", "reason", reason); got != float64(want) {
			t.Errorf("abandoned %s: %v, want %d", reason, got, want)
		}
	}
	if held := res.MustValue(t, "billing_exporter_unsent_bytes"); held != 0 {
		t.Errorf("%v bytes held with no response being written", held)
	}
}

// smallSendBuffers keeps the kernel from taking a whole body off the server.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// stalledGet sends GET /metrics over a connection with a tiny receive
// buffer, and reads only the status line.
func stalledGet(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: exporter\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReaderSize(c, 16).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("stalled client: status %q, %v", status, err)
	}
	return c
}
