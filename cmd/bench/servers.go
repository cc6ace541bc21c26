package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// cleanups is a stack of functions that stop what the runner started. It is
// drained by the main flow (per tenant count, then at the end) and by the
// signal handler; each function runs exactly once.
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

// mark is the current depth, for unwind.
func (c *cleanups) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.fns)
}

// unwind runs, last first, every function added since mark.
func (c *cleanups) unwind(mark int) {
	for {
		c.mu.Lock()
		if len(c.fns) <= mark {
			c.mu.Unlock()
			return
		}
		fn := c.fns[len(c.fns)-1]
		c.fns = c.fns[:len(c.fns)-1]
		c.mu.Unlock()
		fn()
	}
}

// proc is a child process started by the runner. Children get their own
// process group (a Ctrl-C in the terminal reaches only the runner, which
// stops them in order) and SIGKILL if the runner dies.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// childEnv is the runner's environment without the secrets the exporter
// would otherwise pick up instead of its flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDIS_PASSWORD=") || strings.HasPrefix(kv, "BILLING_EXPORTER_POSTGRES_DSN=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// startProc starts bin in dir, its output appended to logPath, with env
// (KEY=VALUE) added to the harness' environment.
func startProc(name, dir, logPath string, cred *syscall.Credential, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(childEnv(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends sig, and SIGKILL if the process has not exited after grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail is the end of the process's log, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// waitReady polls ready until it succeeds, the process exits, or timeout.
func (p *proc) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if !p.running() {
			return fmt.Errorf("%s exited at start:\n%s", p.name, p.logTail())
		}
		if err = ready(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v\n%s", p.name, timeout, err, p.logTail())
}

// waitListening waits until addr accepts TCP connections.
func (p *proc) waitListening(addr string, timeout time.Duration) error {
	return p.waitReady(timeout, func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// makeBaseDir creates the run's temporary directory.
func makeBaseDir() (string, error) {
	return os.MkdirTemp("", "billing-bench-")
}

// runnerTB lets the runner start redis-server and PostgreSQL with
// internal/testserver's launchers, the tests' own: what they clean up joins
// the runner's cleanups, and a failure ends the launching goroutine, as
// testing's Fatal does, with its message kept for launch to return.
type runnerTB struct {
	cl  *cleanups
	dir string // parent of the directories TempDir creates

	mu  sync.Mutex
	err error
}

func (tb *runnerTB) Helper() {}

func (tb *runnerTB) Fatal(args ...any) { tb.fail(errors.New(fmt.Sprint(args...))) }

func (tb *runnerTB) Fatalf(format string, args ...any) { tb.fail(fmt.Errorf(format, args...)) }

func (tb *runnerTB) fail(err error) {
	tb.mu.Lock()
	if tb.err == nil {
		tb.err = err
	}
	tb.mu.Unlock()
	runtime.Goexit()
}

// Errorf is a failure that does not stop the launcher: only a cleanup
// (stopping PostgreSQL) reports one, and the run goes on.
func (tb *runnerTB) Errorf(format string, args ...any) { logf(format, args...) }

func (tb *runnerTB) Cleanup(fn func()) { tb.cl.add(fn) }

func (tb *runnerTB) TempDir() string {
	dir, err := os.MkdirTemp(tb.dir, "server-")
	if err != nil {
		tb.Fatalf("temporary directory: %v", err)
	}
	return dir
}

// launch runs a testserver launcher in its own goroutine, which Fatalf
// ends, and returns what it started or why it failed.
func launch[S any](dir string, start func(testserver.TB) S) (S, error) {
	tb := &runnerTB{cl: &cl, dir: dir}
	done := make(chan S, 1)
	go func() {
		defer close(done) // also when Fatalf ends the goroutine
		done <- start(tb)
	}()
	s, ok := <-done
	if !ok {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		return s, tb.err
	}
	return s, nil
}

// redisServer is internal/testserver's redis-server (no persistence, a
// loopback port), stopped when the runner unwinds.
type redisServer struct{ *testserver.Redis }

func startRedis(dir string) (*redisServer, error) {
	r, err := launch(dir, func(tb testserver.TB) *testserver.Redis { return testserver.StartRedis(tb) })
	if err != nil {
		return nil, err
	}
	return &redisServer{r}, nil
}

func (r redisServer) pid() int { return r.PID() }

// dial opens a connection with timeouts long enough for the generator's
// pipelines of 1000 commands.
func (r redisServer) dial() (redis.Conn, error) {
	return redis.Dial("tcp", r.Addr(),
		redis.DialConnectTimeout(2*time.Second),
		redis.DialReadTimeout(2*time.Minute), redis.DialWriteTimeout(2*time.Minute))
}

// do runs one command on a fresh connection.
func (r redisServer) do(cmd string, args ...any) (any, error) {
	c, err := r.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// pgServer is internal/testserver's PostgreSQL cluster (trust
// authentication, no fsync, run as the postgres OS user when the runner is
// root), stopped and removed when the runner unwinds.
type pgServer struct{ *testserver.Postgres }

func startPostgres(dir string) (*pgServer, error) {
	pg, err := launch(dir, func(tb testserver.TB) *testserver.Postgres { return testserver.StartPostgres(tb) })
	if err != nil {
		return nil, err
	}
	return &pgServer{pg}, nil
}

func (pg pgServer) dsn(db string) string { return pg.DatabaseDSN(db) }

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
