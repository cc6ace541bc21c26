package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stalledRow is what one read mode measured under clients that ask for
// /metrics and never read the body.
type stalledRow struct {
	mode            string
	share           float64
	changed         int // tenants changed before each client
	clients, served int // clients opened, and those answered 200
	wall            time.Duration
	rss             int64  // peak RSS from the first client to the end of the real scrape
	givenUp         string // billing_exporter_scrapes_abandoned_total{reason="unsent_bytes"}: its increase
	failure         string
}

var givenUpLine = regexp.MustCompile(`(?m)^billing_exporter_scrapes_abandoned_total\{reason="unsent_bytes"\} (\S+)$`)

// measureStalled opens n clients one after the other, each after changing
// share of the tenants (so each is rendered from a read of its own), each
// reading only its status line; then scrapes t for real, with every client
// still open.
func measureStalled(t target, n int, rs *redisServer, ts []tenant, period string, share float64, rng *rand.Rand) stalledRow {
	row := stalledRow{share: share, changed: int(share*float64(len(ts)) + 0.5), clients: n}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer client.CloseIdleConnections()
	warm, err := scrape(client, t)
	if err != nil {
		row.failure = "warm-up scrape " + describe(err, t.timeout)
		return row
	}
	before, known := givenUp(warm.body)
	if err := resetPeakRSS(t.pid); err != nil {
		row.failure = err.Error()
		return row
	}
	w, err := rs.dial()
	if err != nil {
		row.failure = err.Error()
		return row
	}
	defer w.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addr := strings.TrimSuffix(strings.TrimPrefix(t.url, "http://"), "/metrics")
	for range n {
		for _, idx := range rng.Perm(len(ts))[:row.changed] {
			if err := w.Send("HINCRBY", usageKey(ts[idx].id, period), "messages", 1); err != nil {
				row.failure = "writer: " + err.Error()
				return row
			}
		}
		if _, err := w.Do(""); err != nil {
			row.failure = "writer: " + err.Error()
			return row
		}
		c, ok, err := stalledClient(addr, t.timeout)
		if err != nil {
			row.failure = "stalled client: " + err.Error()
			return row
		}
		conns = append(conns, c)
		if ok {
			row.served++
		}
	}
	s, err := scrape(client, t)
	if err != nil {
		row.failure = "scrape " + describe(err, t.timeout)
		return row
	}
	row.wall = s.wall
	row.rss, _ = peakRSS(t.pid)
	for _, line := range t.expect {
		if !strings.Contains(string(s.body), "\n"+line+"\n") {
			row.failure = fmt.Sprintf("`%s` missing from the scrape", line)
		}
	}
	row.givenUp = "n/a"
	if after, ok := givenUp(s.body); ok && known {
		row.givenUp = strconv.FormatFloat(after-before, 'f', -1, 64)
	}
	return row
}

// givenUp is a scrape's billing_exporter_scrapes_abandoned_total{reason="unsent_bytes"}.
func givenUp(body []byte) (float64, bool) {
	m := givenUpLine.FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return v, err == nil
}

// stalledClient sends GET /metrics over a connection with a 4 KiB receive
// buffer and reads only the status line; ok reports a 200.
func stalledClient(addr string, timeout time.Duration) (c net.Conn, ok bool, err error) {
	d := net.Dialer{Timeout: timeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	if c, err = d.Dial("tcp", addr); err != nil {
		return nil, false, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err = io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: bench\r\nX-Prometheus-Scrape-Timeout-Seconds: "+scrapeTimeoutHeader+"\r\n\r\n"); err != nil {
		c.Close()
		return nil, false, err
	}
	status, err := bufio.NewReaderSize(c, 16).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, false, err
	}
	return c, strings.HasPrefix(status, "HTTP/1.1 200"), nil
}

// reportStalled writes the stalled clients table of one run.
func reportStalled(p func(string, ...any), r *runResult) {
	if len(r.stalled) == 0 {
		return
	}
	p("Stalled clients (`-stalled`): one after the other, each after the writer changed the given share of the " +
		"tenants, a client sends `GET /metrics` over a connection with a 4 KiB receive buffer and reads only the " +
		"status line; then, with every such client still connected, a real scrape. Peak RSS runs from the first " +
		"client to the end of the real scrape (VmHWM reset after a warm-up). Given up is how much " +
		"`billing_exporter_scrapes_abandoned_total{reason=\"unsent_bytes\"}` grew from the warm-up to the real scrape.\n\n")
	p("| mode | changed before each client | clients (answered 200) | real scrape | peak RSS | given up |\n")
	p("|---|---|---|---|---|---|\n")
	for _, s := range r.stalled {
		wall := fmtDur(s.wall)
		if s.failure != "" {
			wall = s.failure
		}
		p("| %s | %s %% (%d) | %d (%d) | %s | %s | %s |\n", s.mode, trimFloat(s.share*100), s.changed,
			s.clients, s.served, wall, fmtBytes(s.rss), s.givenUp)
	}
	p("\n")
}
