// Command bench measures billing_exporter's scrapes against a floor (the
// least a scrape of the same Redis data can do) and a peer (Debian's
// prometheus-redis-exporter with --check-keys), on generated data, with its
// own redis-server and PostgreSQL on loopback ports. See cmd/bench/README.md.
//
//	go run ./cmd/bench -tenants 10000,100000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/testserver/pgbin"
)

// peerBin is Debian's prometheus-redis-exporter (oliver006/redis_exporter).
const peerBin = "/usr/bin/prometheus-redis-exporter"

type options struct {
	tenants     []int
	months      int
	scrapes     int
	peer        bool
	out         string
	timeout     time.Duration
	peerTimeout time.Duration
	seed        uint64
	extraArgs   []string // appended to the exporter's flags
	exporterEnv []string // KEY=VALUE added to the exporter's environment
	changes     []float64
	changesGzip bool // the -changes scrapes send Accept-Encoding: gzip
	stalled     int  // clients that never read, per read mode and share of -changes
}

// cl holds everything to stop and remove, for the end, errors and signals.
var cl cleanups

func main() {
	var o options
	tenants := flag.String("tenants", "10000,100000", "comma-separated tenant counts; each gets fresh servers and data")
	flag.IntVar(&o.months, "months", 3, "months of usage keys per tenant: the current one and the months-1 before it (UTC)")
	flag.IntVar(&o.scrapes, "scrapes", 5, "measured scrapes per target, after one warm-up")
	flag.BoolVar(&o.peer, "peer", true, "also measure prometheus-redis-exporter --check-keys='usage:*'")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.DurationVar(&o.timeout, "timeout", 120*time.Second, "client timeout of each scrape of the exporter and the floor")
	flag.DurationVar(&o.peerTimeout, "peer-timeout", 60*time.Second, "client timeout of each scrape of the peer; a timeout stops measuring it at this and larger tenant counts")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the data generator")
	exporterArgs := flag.String("exporter.args", "", "space-separated extra flags for the exporter (e.g. \"--redis.scan-count=5000\"), to measure settings")
	exporterEnv := flag.String("exporter.env", "", "space-separated KEY=VALUE added to the exporter's environment only (e.g. \"GOMEMLIMIT=540MiB\", what --auto-gomemlimit sets in a 600 MiB container), not to the floor's or the peer's")
	changes := flag.String("changes", "", "comma-separated shares of tenants (0 to 1, e.g. 0,0.001,0.01,0.1,1) changed before each scrape, to compare --redis.read-mode track and scan; empty: not measured")
	flag.BoolVar(&o.changesGzip, "changes.gzip", false, "with -changes: scrape with Accept-Encoding: gzip, as Prometheus does")
	flag.IntVar(&o.stalled, "stalled", 0, "with -changes: per read mode and share, this many clients that send GET /metrics and never read, then a real scrape; 0: not measured")
	floorListen := flag.String("floor.listen", "", "internal: serve the floor on this address")
	floorRedis := flag.String("floor.redis", "", "internal: the floor's Redis address")
	flag.Parse()
	o.extraArgs = strings.Fields(*exporterArgs)
	o.exporterEnv = strings.Fields(*exporterEnv)
	for _, kv := range o.exporterEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			fmt.Fprintf(os.Stderr, "bench: -exporter.env: %q is not KEY=VALUE\n", kv)
			os.Exit(2)
		}
	}
	var err error
	if o.changes, err = parseShares(*changes); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	if *floorListen != "" {
		if err := runFloor(*floorListen, *floorRedis); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	for _, s := range strings.Split(*tenants, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -tenants: %q is not a positive number\n", s)
			os.Exit(2)
		}
		o.tenants = append(o.tenants, n)
	}
	if o.stalled < 0 || o.stalled > 0 && len(o.changes) == 0 {
		fmt.Fprintln(os.Stderr, "bench: -stalled must not be negative, and needs -changes")
		os.Exit(2)
	}
	if o.months < 1 || o.scrapes < 1 {
		fmt.Fprintln(os.Stderr, "bench: -months and -scrapes must be at least 1")
		os.Exit(2)
	}

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping servers, removing temporary files\n", s)
		cl.unwind(0)
		os.Exit(130)
	}()

	err = run(o)
	cl.unwind(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	base, err := makeBaseDir()
	if err != nil {
		return err
	}
	cl.add(func() { os.RemoveAll(base) })

	logf("building the exporter in %s", root)
	exporterBin := filepath.Join(base, "billing_exporter")
	build := exec.Command("go", "build", "-o", exporterBin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	m := describeMachine()

	var runs []*runResult
	peerFailedAt := 0 // tenant count at which the peer timed out or failed
	for _, n := range o.tenants {
		peer := o.peer && (peerFailedAt == 0 || n < peerFailedAt)
		r, err := runOne(o, n, root, base, exporterBin, self, peer)
		if err != nil {
			return fmt.Errorf("%d tenants: %w", n, err)
		}
		if o.peer && !peer {
			r.notes = append(r.notes, fmt.Sprintf("%s not measured: it did not finish within %v at %d tenants.",
				namePeer, o.peerTimeout, peerFailedAt))
		}
		if pr := r.find(namePeer); pr != nil && pr.failure != "" && (peerFailedAt == 0 || n < peerFailedAt) {
			peerFailedAt = n
		}
		runs = append(runs, r)
	}

	md := report(m, command(), o.scrapes, runs)
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("report written to %s", o.out)
	}
	return nil
}

// runOne starts fresh servers for n tenants, loads the data and measures
// every target, one at a time; everything it started is stopped on return.
func runOne(o options, n int, root, base, exporterBin, self string, peer bool) (*runResult, error) {
	defer cl.unwind(cl.mark())
	dir := filepath.Join(base, "t"+strconv.Itoa(n))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	r := &runResult{tenants: n, months: o.months}

	logf("%d tenants: starting redis-server and PostgreSQL", n)
	rs, err := startRedis(dir)
	if err != nil {
		return nil, err
	}
	pg, err := startPostgres(dir)
	if err != nil {
		return nil, err
	}

	logf("%d tenants: generating %d months of usage and the plans", n, o.months)
	rng := rand.New(rand.NewPCG(o.seed, uint64(n)))
	ts := makeTenants(n, rng)
	if err := writeRedis(rs, ts, periods(time.Now(), o.months), rng, &r.gen); err != nil {
		return nil, fmt.Errorf("generate usage: %w", err)
	}
	if err := writePostgres(pg, filepath.Join(root, "examples", "schema.sql"), ts, &r.gen); err != nil {
		return nil, fmt.Errorf("generate plans: %w", err)
	}
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte(pg.dsn("billing")+"\n"), 0o600); err != nil {
		return nil, err
	}
	if _, err := rs.do("CONFIG", "SET", "slowlog-log-slower-than", "10000", "slowlog-max-len", "1024"); err != nil {
		return nil, err
	}

	r.load = loadAverage()

	// measureProc starts a target, waits for its port, measures and stops it.
	measureProc := func(name, bin string, env, args []string, port int, targets []target) error {
		p, err := startProc(name, dir, filepath.Join(dir, strings.Fields(name)[0]+".log"), nil, env, bin, args...)
		if err != nil {
			return err
		}
		defer p.stop(syscall.SIGTERM, 10*time.Second)
		if err := p.waitListening(loopback(port), 30*time.Second); err != nil {
			return err
		}
		for _, t := range targets {
			logf("%d tenants: scraping %s", n, t.name)
			t.pid = p.pid()
			res := measure(t, o.scrapes, rs)
			if res.failure != "" {
				logf("%d tenants: %s: %s", n, t.name, res.failure)
				if !p.running() {
					res.notes = append(res.notes, "process exited; log: "+p.logTail())
				}
			}
			r.results = append(r.results, res)
		}
		return nil
	}
	metricsURL := func(port int) string { return "http://" + loopback(port) + "/metrics" }

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	err = measureProc("floor", self, nil, []string{"-floor.listen", loopback(port), "-floor.redis", rs.Addr()}, port,
		[]target{{name: nameFloor, url: metricsURL(port), timeout: o.timeout}})
	if err != nil {
		return nil, err
	}

	if port, err = freePort(); err != nil {
		return nil, err
	}
	expect := []string{"billing_redis_up 1", "billing_postgres_up 1"}
	err = measureProc("billing_exporter", exporterBin, o.exporterEnv, append([]string{
		"--redis.addr=" + rs.Addr(), "--postgres.dsn-file=" + dsnFile,
		"--web.listen-address=" + loopback(port), "--scrape.max-timeout=60s",
		// A full read per scrape, the cost the floor is the floor of;
		// -changes measures track mode.
		"--redis.read-mode=scan",
	}, o.extraArgs...), port, []target{
		{name: nameExporter, url: metricsURL(port), timeout: o.timeout, expect: expect},
		{name: nameGzip, url: metricsURL(port), timeout: o.timeout, expect: expect, gzip: true},
	})
	if err != nil {
		return nil, err
	}

	if peer && !isExecutable(peerBin) {
		r.notes = append(r.notes, fmt.Sprintf("%s not measured: %s not found (Debian package prometheus-redis-exporter).", namePeer, peerBin))
		peer = false
	}
	if peer {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		// A timed-out scrape goes on inside the peer; stopping the process
		// (SIGTERM, then SIGKILL) ends its load on Redis.
		err = measureProc("redis_exporter", peerBin, nil, []string{
			"--redis.addr=redis://" + rs.Addr(), "--check-keys=usage:*",
			"--web.listen-address=" + loopback(port),
		}, port, []target{{name: namePeer, url: metricsURL(port), timeout: o.peerTimeout}})
		if err != nil {
			return nil, err
		}
	}

	if len(o.changes) > 0 {
		if r.changes, r.stalled, err = measureChangesRun(o, n, dir, exporterBin, dsnFile, rs, ts, periods(time.Now(), 1)[0]); err != nil {
			return nil, err
		}
	}

	fl, ex := r.find(nameFloor), r.find(nameExporter)
	if fl != nil && ex != nil && len(fl.walls) > 0 && len(ex.walls) > 0 {
		if fl.usage == ex.usage {
			r.notes = append(r.notes, fmt.Sprintf("billing_usage series: %d from the floor and from the exporter (%d tenants × 4 fields).", ex.usage, r.gen.current))
		} else {
			r.notes = append(r.notes, fmt.Sprintf("MISMATCH: billing_usage series: floor %d, exporter %d.", fl.usage, ex.usage))
		}
	}
	return r, nil
}

// loadAverage is the 1, 5 and 15 minute load averages: other work on the
// machine shows up in the figures, and here.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// repoRoot is the directory of the exporter's go.mod, searched upwards
// from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/billing-exporter/billing_exporter\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the billing_exporter repository (no go.mod of github.com/billing-exporter/billing_exporter above %s)", dir)
		}
		dir = parent
	}
}

// command is how the report says the run was started.
func command() string {
	args := []string{"go", "run", "./cmd/bench"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " '\"*$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func describeMachine() machine {
	m := machine{nproc: runtime.NumCPU(), cpu: "?", kernel: "?", memory: "?", redis: "?", postgres: "?", peer: "?"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				m.redis = v
			}
		}
	}
	if bin, err := pgbin.BinDir(); err == nil {
		if out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output(); err == nil {
			m.postgres = strings.TrimPrefix(strings.TrimSpace(string(out)), "postgres (PostgreSQL) ")
		}
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	} else {
		m.goVersion = runtime.Version()
	}
	// "... Redis Metrics Exporter 1.45.0-2+b4    build date: ..."
	if out, err := exec.Command(peerBin, "-version").CombinedOutput(); err == nil {
		s := string(out)
		if i := strings.Index(s, "Redis Metrics Exporter "); i >= 0 {
			f := strings.Fields(s[i+len("Redis Metrics Exporter "):])
			if len(f) > 0 {
				m.peer = "prometheus-redis-exporter " + f[0] + " (Debian)"
			}
		}
	}
	return m
}
