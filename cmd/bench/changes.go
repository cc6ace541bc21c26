package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// changeRow is what one read mode measured at one share of tenants
// changed between scrapes.
type changeRow struct {
	mode    string
	share   float64
	changed int // tenants changed before each scrape
	walls   []time.Duration
	// Per scrape: Redis CPU while the exporter scraped, Redis CPU of the
	// writes (which in track mode include sending the invalidations), and
	// the exporter's CPU from the start of the writes (receiving the
	// invalidations) to the end of the scrape.
	redisCPU, writeRedisCPU, cpu time.Duration
	calls                        []callCount
	// warmRSS is VmHWM after the warm-up scrape: the peak since the
	// process started (in track mode, the first row's includes the seed of
	// the mirror). rss is the peak of the measured scrapes alone (VmHWM
	// reset after the warm-up).
	warmRSS, rss int64
	failure      string
}

// parseShares reads -changes: fractions of the tenants, 0 to 1.
func parseShares(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("-changes: %q is not a share between 0 and 1", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// measureChangesRun starts the exporter once per read mode and measures
// its scrapes with the given shares of tenants changed before each.
func measureChangesRun(o options, n int, dir, exporterBin, dsnFile string, rs *redisServer, ts []tenant, period string) ([]changeRow, []stalledRow, error) {
	var rows []changeRow
	var stalled []stalledRow
	for _, mode := range []string{"scan", "track"} {
		port, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		name := "billing_exporter " + mode
		args := append([]string{
			"--redis.addr=" + rs.Addr(), "--postgres.dsn-file=" + dsnFile,
			"--web.listen-address=" + loopback(port), "--scrape.max-timeout=60s",
			"--redis.read-mode=" + mode, "--redis.resync-interval=0",
		}, o.extraArgs...)
		p, err := startProc(name, dir, filepath.Join(dir, "billing_exporter-"+mode+".log"), nil, o.exporterEnv, exporterBin, args...)
		if err != nil {
			return nil, nil, err
		}
		if err := p.waitListening(loopback(port), 30*time.Second); err != nil {
			p.stop(syscall.SIGTERM, 10*time.Second)
			return nil, nil, err
		}
		t := target{name: name, url: "http://" + loopback(port) + "/metrics", pid: p.pid(), timeout: o.timeout, gzip: o.changesGzip,
			expect: []string{"billing_redis_up 1", "billing_postgres_up 1", `billing_redis_read_mode{mode="` + mode + `"} 1`}}
		// The same changes in both modes.
		rng := rand.New(rand.NewPCG(o.seed, uint64(n)+7))
		for _, share := range o.changes {
			logf("%d tenants: %s, %.1f %% of the tenants changed before each scrape", n, mode, share*100)
			row := measureChanges(t, o.scrapes, rs, ts, period, share, rng)
			row.mode = mode
			if row.failure != "" && !p.running() {
				row.failure += "; process exited; log: " + p.logTail()
			}
			rows = append(rows, row)
		}
		for _, share := range o.changes {
			if o.stalled == 0 {
				break
			}
			logf("%d tenants: %s, %d stalled clients, %.1f %% of the tenants changed before each", n, mode, o.stalled, share*100)
			row := measureStalled(t, o.stalled, rs, ts, period, share, rng)
			row.mode = mode
			if row.failure != "" && !p.running() {
				row.failure += "; process exited; log: " + p.logTail()
			}
			stalled = append(stalled, row)
		}
		p.stop(syscall.SIGTERM, 10*time.Second)
	}
	return rows, stalled, nil
}

// measureChanges scrapes t once to warm up (in track mode: the seed), then
// `scrapes` times, each after changing share of the tenants (one HINCRBY of
// messages each, pipelined, distinct tenants drawn from rng).
func measureChanges(t target, scrapes int, rs *redisServer, ts []tenant, period string, share float64, rng *rand.Rand) changeRow {
	row := changeRow{share: share, changed: int(share*float64(len(ts)) + 0.5)}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer client.CloseIdleConnections()
	if _, err := scrape(client, t); err != nil {
		row.failure = "warm-up scrape " + describe(err, t.timeout)
		return row
	}
	row.warmRSS, _ = peakRSS(t.pid)
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
	calls := map[string]int64{}
	for range scrapes {
		exporterBefore, err := cpuTime(t.pid)
		if err != nil {
			row.failure = err.Error()
			return row
		}
		redisBefore, err := cpuTime(rs.pid())
		if err != nil {
			row.failure = err.Error()
			return row
		}
		for i, idx := range rng.Perm(len(ts))[:row.changed] {
			if err := w.Send("HINCRBY", usageKey(ts[idx].id, period), "messages", 1); err != nil {
				row.failure = "writer: " + err.Error()
				return row
			}
			if (i+1)%1000 == 0 || i+1 == row.changed {
				if _, err := w.Do(""); err != nil {
					row.failure = "writer: " + err.Error()
					return row
				}
			}
		}
		before, err := takeSnapshot(t.pid, rs)
		if err != nil {
			row.failure = err.Error()
			return row
		}
		s, err := scrape(client, t)
		if err != nil {
			row.failure = "scrape " + describe(err, t.timeout)
			return row
		}
		after, err := takeSnapshot(t.pid, rs)
		if err != nil {
			row.failure = err.Error()
			return row
		}
		for _, line := range t.expect {
			if !strings.Contains(string(s.body), "\n"+line+"\n") {
				row.failure = fmt.Sprintf("`%s` missing from a scrape", line)
			}
		}
		row.walls = append(row.walls, s.wall)
		row.redisCPU += after.redisCPU - before.redisCPU
		row.writeRedisCPU += before.redisCPU - redisBefore
		row.cpu += after.cpu - exporterBefore
		after.calls["info"]-- // the runner's INFO commandstats of the first snapshot
		for cmd, c := range after.calls {
			if d := c - before.calls[cmd]; d > 0 {
				calls[cmd] += d
			}
		}
	}
	div := time.Duration(scrapes)
	row.redisCPU, row.writeRedisCPU, row.cpu = row.redisCPU/div, row.writeRedisCPU/div, row.cpu/div
	for cmd, c := range calls {
		row.calls = append(row.calls, callCount{cmd, float64(c) / float64(scrapes)})
	}
	sort.Slice(row.calls, func(i, j int) bool { return row.calls[i].calls > row.calls[j].calls })
	row.rss, _ = peakRSS(t.pid)
	return row
}

// reportChanges writes the changes table of one run and its ratios.
func reportChanges(p func(string, ...any), r *runResult) {
	if len(r.changes) == 0 {
		return
	}
	p("Changes between scrapes (`-changes`): before each measured scrape, a writer changes the given share of " +
		"the tenants (one pipelined `HINCRBY` of `messages` each, distinct tenants, the same sequence in both modes). " +
		"With `-changes.gzip` the scrapes send `Accept-Encoding: gzip`. " +
		"Redis CPU/scrape is Redis' CPU while the exporter scraped; the writes' Redis CPU (which in `track` mode " +
		"includes sending the invalidations) is shown apart. Exporter CPU runs from the start of the writes to the " +
		"end of the scrape. Peak RSS, warm-up is the process's VmHWM after the row's warm-up scrape: its peak since it " +
		"started (in `track` mode the first row's includes the full read that seeds the mirror). Peak RSS, scrapes is " +
		"the peak of the row's measured scrapes alone (VmHWM reset after the warm-up).\n\n")
	p("| mode | changed | wall time, median [min..max] | Redis CPU/scrape | Redis commands/scrape | Redis CPU of the writes | exporter CPU/scrape | peak RSS, warm-up | peak RSS, scrapes |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.changes {
		p("| %s | %s %% (%d) |", c.mode, trimFloat(c.share*100), c.changed)
		if len(c.walls) == 0 {
			p(" %s | | | | | | |\n", c.failure)
			continue
		}
		wall := fmtWalls(c.walls)
		if c.failure != "" {
			wall += " (" + c.failure + ")"
		}
		p(" %s | %s | %s | %s | %s | %s | %s |\n", wall, fmtDur(c.redisCPU), fmtCalls(c.calls),
			fmtDur(c.writeRedisCPU), fmtDur(c.cpu), fmtBytes(c.warmRSS), fmtBytes(c.rss))
	}
	p("\n| changed | track / scan, wall | track / scan, Redis CPU | track / floor, wall |\n|---|---|---|---|\n")
	fl := r.find(nameFloor)
	for _, c := range r.changes {
		if c.mode != "track" {
			continue
		}
		for _, s := range r.changes {
			if s.mode == "scan" && s.share == c.share {
				cpuRatio := ratio(c.redisCPU, s.redisCPU)
				if c.redisCPU == 0 && s.redisCPU > 0 {
					cpuRatio = "0 (below the 10 ms tick)"
				}
				p("| %s %% | %s | %s | %s |\n", trimFloat(c.share*100), ratio(median(c.walls), median(s.walls)),
					cpuRatio, ratio(median(c.walls), median(walls(fl))))
			}
		}
	}
	p("\n")
}
