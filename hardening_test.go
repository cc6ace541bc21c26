package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// fillTenants writes n usage hashes for the current period in one Lua call.
func fillTenants(t *testing.T, r *testserver.Redis, n int) {
	t.Helper()
	cur := period.At(time.Now(), time.UTC).ID
	r.Do("EVAL", `for i=1,tonumber(ARGV[1]) do
		redis.call('HSET','usage:tenant-'..i..':'..ARGV[2],'messages',i,'storage',i*1000,'users',i%50,'whatsappSessions',1)
	end`, 0, n, cur)
}

// stalledClient connects with a small receive buffer, sends a GET for path
// and reads only the status line: the server has answered, and the body
// stays unread.
func stalledClient(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: exporter\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	status, err := bufio.NewReaderSize(c, 16).ReadString('\n')
	if err != nil {
		t.Fatalf("stalled client: no status line: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("stalled client: %q", status)
	}
	return c
}

func exporterAddr(e *exporter) string { return strings.TrimPrefix(e.URL, "http://") }

// peakRSSMiB is the exporter's peak resident set size in MiB.
func peakRSSMiB(t *testing.T, e *exporter) float64 {
	t.Helper()
	p, err := procfs.NewProc(e.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	return float64(st.VmHWM) / (1 << 20)
}

// TestStalledReadersDoNotLockOutScrapes: twice --web.max-requests
// clients ask for /metrics (plain text, several MB) and never read the
// body. A scrape slot covers the read and the rendering only, so the next
// scrape is served at once; the stalled connections are closed by the
// write deadline (scrape timeout plus offset), releasing their bodies.
func TestStalledReadersDoNotLockOutScrapes(t *testing.T) {
	r := testserver.StartRedis(t)
	fillTenants(t, r, 15000)
	const slots, stalled = 4, 8
	e := startExporter(t, nil, "--redis.addr="+r.Addr(), "--web.max-requests="+strconv.Itoa(slots),
		"--scrape.max-timeout=15s")
	before := peakRSSMiB(t, e)
	conns := make([]net.Conn, 0, stalled)
	for range stalled {
		conns = append(conns, stalledClient(t, exporterAddr(e), "/metrics"))
	}
	lastStatus := time.Now()
	res := scrapetest.Get(t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "15"})
	if res.Status != http.StatusOK {
		t.Fatalf("scrape with %d stalled clients: status %d: %s", stalled, res.Status, res.Body)
	}
	if up := res.MustValue(t, "billing_redis_up"); up != 1 {
		t.Errorf("billing_redis_up %v, want 1", up)
	}
	// Every write deadline (the request's arrival, before its status line,
	// plus --scrape.max-timeout and the 250 ms offset) has passed by then.
	time.Sleep(time.Until(lastStatus.Add(15*time.Second + 750*time.Millisecond)))
	// Each stalled connection is closed once its write deadline passes:
	// reading it to the end ends (EOF or reset) megabytes short of the
	// whole body, which did not fit in the sockets' buffers.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("stalled client %d: connection still open after 30s (%d bytes read)", i, n)
		}
		if n > int64(len(res.Body))-1<<20 {
			t.Errorf("stalled client %d read %d bytes of a %d-byte body: not cut short by the write deadline", i, n, len(res.Body))
		}
	}
	t.Logf("peak RSS %.0f MiB before, %.0f MiB after %d stalled readers of a %d-byte body",
		before, peakRSSMiB(t, e), stalled, len(res.Body))
}

// TestIdleConnectionsDoNotExhaustDescriptors: under an open-file limit of
// 128, 300 keep-alive connections left idle after one request each would
// exhaust the descriptors (accept fails, scrapes hang); with
// --web.max-connections=64 each new one replaces the longest idle one, and
// a scrape still works.
func TestIdleConnectionsDoNotExhaustDescriptors(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	r := testserver.StartRedis(t)
	fillTenants(t, r, 10)
	e := launchWrappedExporter(t, []string{"prlimit", "--nofile=128:128", "--"}, "http", http.DefaultClient, "/-/healthy", nil,
		"--redis.addr="+r.Addr(), "--web.max-connections=64")

	const idle = 300
	closedByServer := 0
	conns := make([]net.Conn, 0, idle)
	for i := range idle {
		c, err := net.DialTimeout("tcp", exporterAddr(e), 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /-/healthy HTTP/1.1\r\nHost: exporter\r\n\r\n"); err != nil {
			closedByServer++
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			closedByServer++ // replaced before it was served
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape after %d idle connections: %v", idle, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape after %d idle connections: status %d", idle, resp.StatusCode)
	}
	// The server closed the connections it replaced: at most the cap stay.
	open := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open > 64 {
		t.Errorf("%d idle connections still open, want at most --web.max-connections=64", open)
	}
	t.Logf("%d connections opened, %d refused or replaced before served, %d still open", idle, closedByServer, open)
}

// TestIdleConnectionsReaped: a keep-alive connection left idle is closed
// by the server after --web.idle-timeout.
func TestIdleConnectionsReaped(t *testing.T) {
	r := testserver.StartRedis(t)
	e := startExporter(t, nil, "--redis.addr="+r.Addr(), "--web.idle-timeout=500ms")
	c, err := net.DialTimeout("tcp", exporterAddr(e), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /-/healthy HTTP/1.1\r\nHost: exporter\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read gave %v, want EOF (closed by the server)", err)
	}
}

// TestImpatientScraperDoesNotPoisonSharedRead: a client scrapes in a loop
// with X-Prometheus-Scrape-Timeout-Seconds: 0.1 while Redis is slowed
// (DEBUG SLEEP), and real scrapes with 10 s arrive while the reads it
// starts run. A shared read runs under --scrape.max-timeout, not its first
// caller's deadline, and a patient scrape never shares the budget of an
// impatient one: every real scrape sees Redis up.
func TestImpatientScraperDoesNotPoisonSharedRead(t *testing.T) {
	r := testserver.StartRedis(t)
	fillTenants(t, r, 200)
	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // Redis stalls 0.3 s at a time
		defer wg.Done()
		c := r.Conn()
		defer c.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = c.Do("DEBUG", "SLEEP", "0.3")
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() { // the impatient client
		defer wg.Done()
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, e.URL+"/metrics", nil)
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "0.1")
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// Five real scrapers, six scrapes each, back to back: most arrive while
	// a read the impatient client started is in flight, and join it.
	const scrapers, each = 5, 6
	results := make(chan *scrapetest.Result, scrapers*each)
	for range scrapers {
		go func() {
			for range each {
				results <- scrapetest.Get(t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "10"})
			}
		}()
	}
	down := 0
	for range scrapers * each {
		res := <-results
		if res.Status != http.StatusOK {
			t.Errorf("real scrape: status %d", res.Status)
			continue
		}
		if up, _ := res.Value("billing_redis_up"); up != 1 {
			down++
		}
	}
	if down > 0 {
		t.Errorf("%d of %d real 10 s scrapes reported billing_redis_up 0 next to a 0.1 s client", down, scrapers*each)
	}
}

// TestPatientScrapeBehindAStalledRead: Redis is stalled (DEBUG SLEEP 2)
// when a scrape with a 0.5 s budget starts a read; a 10 s scrape arrives
// while the read's first round trip, the mirror's barrier on its tracking
// connection, waits. The barrier must not time out at the impatient
// scrape's budget, which would cost a full read to re-seed the mirror
// (billing_redis_full_reads_total{reason="connection_lost"}): the patient
// scrape sees Redis up with every tenant, from the mirror. (Should the
// machine be so slow that the patient scrape starts the read itself, the
// test passes without proving anything.)
func TestPatientScrapeBehindAStalledRead(t *testing.T) {
	r := testserver.StartRedis(t)
	fillTenants(t, r, 50)
	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	if up := e.scrape().MustValue(t, "billing_redis_up"); up != 1 { // seeds the mirror
		t.Fatalf("before the stall: billing_redis_up %v", up)
	}
	stalled := make(chan struct{})
	go func() {
		c := r.Conn()
		defer c.Close()
		if err := c.Send("DEBUG", "SLEEP", "2"); err == nil {
			_ = c.Flush()
		}
		close(stalled)
		_, _ = c.Receive()
	}()
	<-stalled
	time.Sleep(100 * time.Millisecond) // Redis is asleep
	impatient := make(chan *scrapetest.Result, 1)
	go func() {
		impatient <- scrapetest.Get(t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "0.75"})
	}()
	time.Sleep(150 * time.Millisecond) // its read is waiting for Redis
	res := scrapetest.Get(t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "10"})
	<-impatient
	if res.Status != http.StatusOK {
		t.Fatalf("patient scrape: status %d", res.Status)
	}
	if up, _ := res.Value("billing_redis_up"); up != 1 {
		t.Fatalf("patient scrape joining a stalled read: billing_redis_up %v, want 1", up)
	}
	if n := len(res.Samples("billing_usage", "metric_type", "messages")); n != 50 {
		t.Errorf("patient scrape: %d tenants' messages, want 50", n)
	}
	if n, _ := res.Value("billing_redis_full_reads_total", "reason", "connection_lost"); n != 0 {
		t.Errorf("patient scrape: %v full reads for a lost tracking connection, want 0 (the barrier timed out)", n)
	}
}

// TestMetricsAnswersGETOnly: any other method on /metrics is 405 with
// Allow: GET, and costs Redis nothing.
func TestMetricsAnswersGETOnly(t *testing.T) {
	r := testserver.StartRedis(t)
	fillTenants(t, r, 10)
	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	scans := r.CommandCalls("scan")
	for _, method := range []string{http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodTrace, "FOO"} {
		req, _ := http.NewRequest(method, e.URL+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
			t.Errorf("%s /metrics: %d, Allow %q; want 405, Allow GET", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if n := r.CommandCalls("scan"); n != scans {
		t.Errorf("%d SCANs for requests refused, want none", n-scans)
	}
	if up := e.scrape().MustValue(t, "billing_redis_up"); up != 1 {
		t.Errorf("GET: billing_redis_up %v", up)
	}
}

// TestClientCommandRenamed: a Redis that renamed CLIENT away (a common
// hardening) is read all the same: naming the connection is best effort.
func TestClientCommandRenamed(t *testing.T) {
	r := testserver.StartRedis(t, "--rename-command", "CLIENT", "")
	fillTenants(t, r, 10)
	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	if up := e.scrape().MustValue(t, "billing_redis_up"); up != 1 {
		t.Errorf("billing_redis_up %v with CLIENT renamed, want 1", up)
	}
}

// TestReplicaWithMasterLinkDown: a replica whose master went away still
// answers (billing_redis_up 1: its data is read completely), and
// billing_redis_master_link_up says the data may be stale.
func TestReplicaWithMasterLinkDown(t *testing.T) {
	master := testserver.StartRedis(t)
	fillTenants(t, master, 10)
	replica := testserver.StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	linkStatus := func() string {
		info, _ := replica.Do("INFO", "replication").([]byte)
		for _, line := range strings.Split(string(info), "\r\n") {
			if v, ok := strings.CutPrefix(line, "master_link_status:"); ok {
				return v
			}
		}
		return ""
	}
	eventually(t, "the replica in sync", func() bool { return linkStatus() == "up" })
	e := startExporter(t, nil, "--redis.addr="+replica.Addr())
	res := e.scrape()
	if v := res.MustValue(t, "billing_redis_master_link_up"); v != 1 {
		t.Errorf("link up: billing_redis_master_link_up %v, want 1", v)
	}
	master.Stop()
	eventually(t, "the link down", func() bool { return linkStatus() == "down" })
	res = e.scrape()
	if v := res.MustValue(t, "billing_redis_master_link_up"); v != 0 {
		t.Errorf("link down: billing_redis_master_link_up %v, want 0", v)
	}
	if v := res.MustValue(t, "billing_redis_up"); v != 1 {
		t.Errorf("link down: billing_redis_up %v, want 1 (the replica was read)", v)
	}
	if len(res.Samples("billing_usage")) == 0 {
		t.Error("no per-tenant series from the replica")
	}
}

// TestFailuresLoggedOnChange: with Redis down, five scrapes and three API
// list requests log the failure once (with a count when it recovers), not
// once per request.
func TestFailuresLoggedOnChange(t *testing.T) {
	r := testserver.StartRedis(t)
	fillTenants(t, r, 10)
	r.Stop()
	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	for range 5 {
		if up := e.scrape().MustValue(t, "billing_redis_up"); up != 0 {
			t.Fatalf("billing_redis_up %v with Redis stopped", up)
		}
	}
	for range 3 {
		time.Sleep(1100 * time.Millisecond) // past the reuse of a failed read
		resp, err := http.Get(e.URL + "/api/v1/tenants")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("API with Redis stopped: %d, want 503", resp.StatusCode)
		}
	}
	if n := strings.Count(e.Output(), "reading usage from Redis failed"); n != 1 {
		t.Errorf("failure logged %d times for 8 failed reads, want once:\n%s", n, e.Output())
	}
	if n := strings.Count(e.Output(), "level=WARN"); n > 3 {
		t.Errorf("%d WARN lines for one outage:\n%s", n, e.Output())
	}
	r.Start()
	if up := e.scrape().MustValue(t, "billing_redis_up"); up != 1 {
		t.Fatalf("billing_redis_up %v after Redis came back", up)
	}
	// The log reaches the test through a pipe: wait for the line.
	eventually(t, "the recovery logged", func() bool {
		return strings.Contains(e.Output(), "reading usage from Redis works again")
	})

	// The track mode's mirror (the default) was seeded by that scrape; a
	// second outage makes every scrape retry its full read for the same
	// reason, which is said once, not per scrape.
	const mirrorLine = "Redis usage mirror cannot be proven current"
	before := strings.Count(e.Output(), mirrorLine)
	r.Stop()
	for range 5 {
		if up := e.scrape().MustValue(t, "billing_redis_up"); up != 0 {
			t.Fatalf("billing_redis_up %v with Redis stopped again", up)
		}
	}
	if n := strings.Count(e.Output(), mirrorLine) - before; n != 1 {
		t.Errorf("mirror's full read logged %d times for 5 failed scrapes, want once:\n%s", n, e.Output())
	}
}

// TestPasswordInRedisURLWarned: a password in --redis.addr works, but a
// WARN says it is visible to anyone listing processes; the password itself
// is never logged.
func TestPasswordInRedisURLWarned(t *testing.T) {
	const pw = "url-pw-5e1f"
	r := testserver.StartRedis(t, "--requirepass", pw)
	e := startExporter(t, nil, "--redis.addr=redis://:"+pw+"@"+r.Addr())
	if up := e.scrape().MustValue(t, "billing_redis_up"); up != 1 {
		t.Errorf("billing_redis_up %v", up)
	}
	out := e.Output()
	if !strings.Contains(out, "--redis.addr carries a password") {
		t.Errorf("no warning about the password in --redis.addr:\n%s", out)
	}
	if strings.Contains(out, pw) {
		t.Errorf("password in the log:\n%s", out)
	}
}
