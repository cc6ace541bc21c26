package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// scrapeTimeoutHeader is what Prometheus sends with scrape_timeout: 60s.
const scrapeTimeoutHeader = "60"

// target is one /metrics endpoint and the process behind it.
type target struct {
	name    string
	url     string
	pid     int
	gzip    bool          // send Accept-Encoding: gzip, as Prometheus does
	timeout time.Duration // client timeout of each scrape
	expect  []string      // lines every scrape must contain (sanity checks)
}

// result is what one target measured at one tenant count.
type result struct {
	target   string
	walls    []time.Duration
	bytes    []int64 // on the wire
	series   int     // samples in the last scrape
	usage    int     // billing_usage samples in the last scrape
	rss      int64   // VmHWM after the scrapes
	cpu      time.Duration
	redisCPU time.Duration
	calls    []callCount // Redis commands per scrape
	slowest  *slowEntry  // largest SLOWLOG entry (> 10 ms), warm-up included
	failure  string      // why the target was not (fully) measured
	notes    []string
}

type callCount struct {
	cmd   string
	calls float64
}

type slowEntry struct {
	micros int64
	cmd    string
}

type scraped struct {
	wall   time.Duration
	wire   int64
	series int
	usage  int
	body   []byte
}

// measure scrapes t once to warm up, then n times, sequentially, and reads
// the CPU time of the target and of redis-server around the n scrapes.
func measure(t target, n int, r *redisServer) result {
	res := result{target: t.name}
	client := &http.Client{Transport: &http.Transport{
		Proxy:              nil, // loopback only, whatever HTTP_PROXY says
		DisableCompression: true,
	}}
	defer client.CloseIdleConnections()

	if _, err := r.do("SLOWLOG", "RESET"); err != nil {
		res.failure = "SLOWLOG RESET: " + err.Error()
		return res
	}
	if _, err := scrape(client, t); err != nil {
		res.failure = "warm-up scrape " + describe(err, t.timeout)
		res.slowest = slowest(r)
		return res
	}
	before, err := takeSnapshot(t.pid, r)
	if err != nil {
		res.failure = err.Error()
		return res
	}
	attempts := 0
	for i := 0; i < n; i++ {
		attempts++
		s, err := scrape(client, t)
		if err != nil {
			res.failure = fmt.Sprintf("scrape %d of %d %s", i+1, n, describe(err, t.timeout))
			break
		}
		res.walls = append(res.walls, s.wall)
		res.bytes = append(res.bytes, s.wire)
		res.series, res.usage = s.series, s.usage
		for _, line := range t.expect {
			if !bytes.Contains(s.body, []byte("\n"+line+"\n")) {
				res.notes = appendOnce(res.notes, fmt.Sprintf("`%s` missing from a scrape", line))
			}
		}
	}
	after, err := takeSnapshot(t.pid, r)
	if err != nil {
		res.failure = err.Error()
		return res
	}
	div := time.Duration(attempts)
	res.cpu = (after.cpu - before.cpu) / div
	res.redisCPU = (after.redisCPU - before.redisCPU) / div
	after.calls["info"]-- // the runner's own INFO commandstats of the first snapshot
	for cmd, c := range after.calls {
		if d := c - before.calls[cmd]; d > 0 {
			res.calls = append(res.calls, callCount{cmd, float64(d) / float64(attempts)})
		}
	}
	sort.Slice(res.calls, func(i, j int) bool { return res.calls[i].calls > res.calls[j].calls })
	res.rss, _ = peakRSS(t.pid)
	res.slowest = slowest(r)
	return res
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("timed out (client timeout %v)", timeout)
	}
	return "failed: " + err.Error()
}

// scrape does one GET like Prometheus: the timeout header, no Accept
// header (text format), Accept-Encoding only when t.gzip. The wall time ends
// when the last byte of the body has arrived.
// scrapeBuffer holds response bodies between scrapes: reading 88 MB into a
// fresh, growing slice would charge the client's reallocations and page
// faults to the target's wall time (on the same two cores).
var scrapeBuffer bytes.Buffer

func scrape(client *http.Client, t target) (scraped, error) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return scraped{}, err
	}
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", scrapeTimeoutHeader)
	if t.gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return scraped{}, err
	}
	scrapeBuffer.Reset()
	_, err = scrapeBuffer.ReadFrom(resp.Body)
	resp.Body.Close()
	body := scrapeBuffer.Bytes()
	s := scraped{wall: time.Since(start), wire: int64(len(body))}
	if err != nil {
		return s, err
	}
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("HTTP %s: %.200s", resp.Status, body)
	}
	switch enc := resp.Header.Get("Content-Encoding"); {
	case enc == "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return s, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return s, fmt.Errorf("gunzip: %w", err)
		}
	case t.gzip:
		return s, fmt.Errorf("asked for gzip, got Content-Encoding %q", enc)
	}
	s.body = append([]byte{'\n'}, body...) // so that every line starts after a '\n'
	for _, line := range bytes.Split(body, []byte{'\n'}) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		s.series++
		if bytes.HasPrefix(line, []byte("billing_usage{")) {
			s.usage++
		}
	}
	return s, nil
}

type snapshot struct {
	cpu, redisCPU time.Duration
	calls         map[string]int64
}

func takeSnapshot(pid int, r *redisServer) (snapshot, error) {
	var s snapshot
	var err error
	if s.cpu, err = cpuTime(pid); err != nil {
		return s, err
	}
	if s.redisCPU, err = cpuTime(r.pid()); err != nil {
		return s, err
	}
	text, err := redis.String(r.do("INFO", "commandstats"))
	if err != nil {
		return s, fmt.Errorf("INFO commandstats: %w", err)
	}
	s.calls = map[string]int64{}
	for _, line := range strings.Split(text, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, ",") // calls=N,usec=…
		calls, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return s, fmt.Errorf("INFO commandstats: %q: %w", line, err)
		}
		s.calls[name] = calls
	}
	return s, nil
}

// slowest is the largest SLOWLOG entry since the last SLOWLOG RESET; the
// threshold (slowlog-log-slower-than) is 10 ms.
func slowest(r *redisServer) *slowEntry {
	entries, err := redis.Values(r.do("SLOWLOG", "GET", 1024))
	if err != nil {
		return &slowEntry{cmd: "SLOWLOG GET failed: " + err.Error()}
	}
	var top *slowEntry
	for _, e := range entries {
		f, err := redis.Values(e, nil)
		if err != nil || len(f) < 4 {
			continue
		}
		micros, _ := redis.Int64(f[2], nil)
		if top != nil && micros <= top.micros {
			continue
		}
		args, _ := redis.Strings(f[3], nil)
		if len(args) > 3 {
			args = append(args[:3], "…")
		}
		for i, a := range args {
			if len(a) > 40 {
				args[i] = a[:40] + "…"
			}
		}
		top = &slowEntry{micros: micros, cmd: strings.Join(args, " ")}
	}
	return top
}
