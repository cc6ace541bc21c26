package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5"

	"github.com/billing-exporter/billing_exporter/internal/pgbin"
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

func startProc(name, dir, logPath string, cred *syscall.Credential, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
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

// makeBaseDir creates the run's temporary directory in a place the postgres
// OS user can enter (its parents must be world-traversable).
func makeBaseDir() (string, error) {
	parent, err := pgbin.TraversableTempDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(parent, "billing-bench-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// redisServer is a redis-server with no persistence on a loopback port.
type redisServer struct {
	*proc
	addr string
}

func startRedis(dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH (Debian package redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startProc("redis-server", dir, filepath.Join(dir, "redis.log"), nil, bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return nil, err
	}
	r := &redisServer{proc: p, addr: loopback(port)}
	err = p.waitReady(10*time.Second, func() error {
		c, err := r.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do("PING")
		return err
	})
	if err != nil {
		r.stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return r, nil
}

func (r *redisServer) dial() (redis.Conn, error) {
	return redis.Dial("tcp", r.addr,
		redis.DialConnectTimeout(2*time.Second),
		redis.DialReadTimeout(2*time.Minute), redis.DialWriteTimeout(2*time.Minute))
}

// do runs one command on a fresh connection.
func (r *redisServer) do(cmd string, args ...any) (any, error) {
	c, err := r.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// pgServer is a PostgreSQL cluster (trust authentication, no fsync) run as
// the postgres OS user when the runner is root, since initdb refuses root:
// the approach of internal/testserver, without testing.TB.
type pgServer struct {
	*proc
	port int
}

func startPostgres(base string) (*pgServer, error) {
	bin, err := pgbin.BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := pgbin.Credential()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, "pg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.Env = childEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startProc("postgres", dir, filepath.Join(dir, "postgres.log"), cred, filepath.Join(bin, "postgres"),
		"-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=50", "-c", "log_min_messages=warning")
	if err != nil {
		return nil, err
	}
	pg := &pgServer{proc: p, port: port}
	err = p.waitReady(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pg.dsn("postgres"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
	if err != nil {
		pg.stopServer()
		return nil, err
	}
	return pg, nil
}

func (pg *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// stopServer is a fast shutdown (SIGINT to the postmaster: clients are
// disconnected at once).
func (pg *pgServer) stopServer() { pg.stop(syscall.SIGINT, 30*time.Second) }

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
