package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Target names, used to find the rows the ratios compare.
const (
	nameFloor    = "floor"
	nameExporter = "billing_exporter"
	nameGzip     = "billing_exporter, gzip"
	namePeer     = "redis_exporter --check-keys='usage:*'"
)

// run is everything measured at one tenant count.
type runResult struct {
	tenants int
	months  int
	gen     genStats
	load    string // load averages before the scrapes
	results []result
	changes []changeRow
	stalled []stalledRow
	notes   []string
}

func (r *runResult) find(name string) *result {
	for i := range r.results {
		if r.results[i].target == name {
			return &r.results[i]
		}
	}
	return nil
}

type machine struct {
	nproc                      int
	cpu, kernel, memory        string
	redis, postgres, goVersion string
	peer                       string
}

func report(m machine, command string, scrapes int, runs []*runResult) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("## Scrape benchmark (%s)\n\n", time.Now().UTC().Format("2006-01-02"))
	p("- Command: `%s`\n", command)
	p("- Machine: %d × %s (nproc %d), %s RAM, Linux %s\n", m.nproc, m.cpu, m.nproc, m.memory, m.kernel)
	p("- Redis %s, PostgreSQL %s, %s; peer: %s\n", m.redis, m.postgres, m.goVersion, m.peer)
	p("- Each target: 1 warm-up scrape, then %d measured scrape(s), sequentially, one target running at a time, "+
		"with `X-Prometheus-Scrape-Timeout-Seconds: %s`, no `Accept` header and no `Accept-Encoding` "+
		"(the gzip row sends `Accept-Encoding: gzip`). CPU is utime+stime from /proc (10 ms ticks) "+
		"over the %d scrapes, divided by %d; peak RSS is VmHWM of the target's process since its start.\n\n",
		scrapes, scrapeTimeoutHeader, scrapes, scrapes)

	for _, r := range runs {
		g := r.gen
		p("### %d tenants × %d months\n\n", r.tenants, r.months)
		p("%d usage keys, %d in the current period; %d tenants near a limit (80–99 %%), %d over (≥ 100 %%), "+
			"%d without a plan. Generated in %s (Redis) + %s (PostgreSQL). Load average before the scrapes: %s.\n\n",
			g.keys, g.current, g.near, g.over, g.noPlan, fmtDur(g.redis), fmtDur(g.postgres), r.load)
		p("| target | wall time, median [min..max] | bytes/scrape | series | peak RSS | target CPU/scrape | Redis CPU/scrape | Redis commands/scrape | slowest Redis command (> 10 ms) |\n")
		p("|---|---|---|---|---|---|---|---|---|\n")
		for _, res := range r.results {
			p("| %s |", res.target)
			if len(res.walls) == 0 {
				p(" %s | | | | | | | %s |\n", res.failure, fmtSlow(res.slowest))
				continue
			}
			wall := fmtWalls(res.walls)
			if res.failure != "" {
				wall += " (then " + res.failure + ")"
			}
			p(" %s | %s | %d | %s | %s | %s | %s | %s |\n",
				wall, fmtBytes(medianInt(res.bytes)), res.series, fmtBytes(res.rss),
				fmtDur(res.cpu), fmtDur(res.redisCPU), fmtCalls(res.calls), fmtSlow(res.slowest))
		}
		p("\n")
		notes := slices.Clone(r.notes)
		for _, res := range r.results {
			for _, n := range res.notes {
				notes = append(notes, res.target+": "+n)
			}
		}
		for _, n := range notes {
			p("- %s\n", n)
		}
		if len(notes) > 0 {
			p("\n")
		}
		reportChanges(p, r)
		reportStalled(p, r)
	}

	p("### Ratios\n\n")
	p("| tenants | exporter / floor, wall | exporter gzip / floor, wall | Redis CPU, exporter / floor | exporter / floor, CPU |\n")
	p("|---|---|---|---|---|\n")
	for _, r := range runs {
		fl, ex, gz := r.find(nameFloor), r.find(nameExporter), r.find(nameGzip)
		p("| %d | %s | %s | %s | %s |\n", r.tenants,
			ratio(median(walls(ex)), median(walls(fl))), ratio(median(walls(gz)), median(walls(fl))),
			ratio(redisCPU(ex), redisCPU(fl)), ratio(cpu(ex), cpu(fl)))
	}
	p("\n")
	if len(runs) >= 2 {
		lo, hi := runs[0], runs[0]
		for _, r := range runs {
			if r.tenants < lo.tenants {
				lo = r
			}
			if r.tenants > hi.tenants {
				hi = r
			}
		}
		if lo != hi {
			p("Scaling of billing_exporter's median wall time, t(%d)/t(%d), for %.0f× the tenants: "+
				"%s without compression, %s with gzip (floor: %s).\n",
				hi.tenants, lo.tenants, float64(hi.tenants)/float64(lo.tenants),
				ratio(median(walls(hi.find(nameExporter))), median(walls(lo.find(nameExporter)))),
				ratio(median(walls(hi.find(nameGzip))), median(walls(lo.find(nameGzip)))),
				ratio(median(walls(hi.find(nameFloor))), median(walls(lo.find(nameFloor)))))
		}
	}
	return b.String()
}

func walls(r *result) []time.Duration {
	if r == nil {
		return nil
	}
	return r.walls
}

func cpu(r *result) time.Duration {
	if r == nil || len(r.walls) == 0 {
		return 0
	}
	return r.cpu
}

func redisCPU(r *result) time.Duration {
	if r == nil || len(r.walls) == 0 {
		return 0
	}
	return r.redisCPU
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianInt(xs []int64) int64 {
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = time.Duration(x)
	}
	return int64(median(ds))
}

func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func fmtWalls(ds []time.Duration) string {
	return fmt.Sprintf("%s [%s..%s]", fmtDur(median(ds)), fmtDur(slices.Min(ds)), fmtDur(slices.Max(ds)))
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fmtCalls lists the most frequent commands, e.g. "hgetall 2000, scan 7".
func fmtCalls(cs []callCount) string {
	var parts []string
	for i, c := range cs {
		if i == 4 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s", c.cmd, trimFloat(c.calls)))
	}
	return strings.Join(parts, ", ")
}

func trimFloat(f float64) string {
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%.1f", f)
}

func fmtSlow(s *slowEntry) string {
	if s == nil {
		return "none"
	}
	if s.micros == 0 {
		return s.cmd
	}
	return fmt.Sprintf("%.1f ms `%s`", float64(s.micros)/1000, strings.ReplaceAll(s.cmd, "|", `\|`))
}
