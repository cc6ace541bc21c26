package testserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Redis is a redis-server started for one test.
type Redis struct {
	t    TB
	bin  string
	dir  string
	Port int
	args []string
	// dialOpts are how the tests' own connections reach the server (TLS
	// settings for a TLS-only server).
	dialOpts []redis.DialOption

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedis starts redis-server on a free loopback port with no
// persistence. Extra arguments are passed as command-line config
// (for example "--requirepass", "secret"). It is stopped at test cleanup.
func StartRedis(t TB, extra ...string) *Redis {
	t.Helper()
	r := newRedis(t)
	r.start(append([]string{"--port", strconv.Itoa(r.Port)}, extra...))
	return r
}

// newRedis prepares a server on a free port in a temp dir.
func newRedis(t TB) *Redis {
	t.Helper()
	return &Redis{
		t:    t,
		bin:  RequireBinary(t, "redis-server", "redis-server"),
		dir:  t.TempDir(),
		Port: pickPort(t),
	}
}

// start runs the server with the common settings (loopback, no
// persistence, DEBUG allowed for fault tests) plus args, and stops it at
// test cleanup. A port FreePort gave may be taken by the time the server
// binds it (another test's outgoing connection got it: seen in CI for a
// cluster bus port): the ports in args are then picked again, up to three
// times in all.
func (r *Redis) start(args []string) {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		r.args = append([]string{
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", r.dir,
			"--logfile", r.logFile(),
			"--enable-debug-command", "local",
		}, args...)
		err := r.launch()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			r.t.Fatalf("redis-server on %s: %v\n%s", r.Addr(), err, r.Log())
		}
		args = r.repickPorts(args)
	}
	r.t.Cleanup(r.Stop)
}

// errPortTaken: the server could not bind one of its ports.
var errPortTaken = errors.New("a port is taken")

// repickPorts returns args with a new free port for each port option
// (client, TLS and cluster bus; a client port of 0, off, stays off).
func (r *Redis) repickPorts(args []string) []string {
	args = slices.Clone(args)
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--port", "--tls-port", "--cluster-port":
			if args[i+1] == "0" {
				continue
			}
			port := pickPort(r.t)
			args[i+1] = strconv.Itoa(port)
			if args[i] != "--cluster-port" {
				r.Port = port
			}
		}
	}
	return args
}

// PID is the server's process id (bench measures its CPU time), 0 while
// it is stopped.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// Start (re)starts the server on its port; the dataset starts empty.
func (r *Redis) Start() {
	r.t.Helper()
	if err := r.launch(); err != nil {
		r.t.Fatalf("redis-server on %s: %v\n%s", r.Addr(), err, r.Log())
	}
}

// launch starts the server and waits until this run of it logs that it
// accepts connections and answers: a PING alone could be answered by
// another server that holds the port this one failed to bind.
func (r *Redis) launch() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	logStart := 0
	if fi, err := os.Stat(r.logFile()); err == nil {
		logStart = int(fi.Size()) // a restart appends to the log
	}
	cmd := exec.Command(r.bin, r.args...)
	cmd.Dir = r.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.cmd = cmd
	fail := func(err error) error {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.cmd = nil
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := r.Log()
		log = log[min(logStart, len(log)):]
		if strings.Contains(log, "Address already in use") {
			return fail(errPortTaken)
		}
		var err error
		if strings.Contains(log, "Ready to accept connections") {
			if err = r.ping(); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not ready after 10s: %v", err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping reports whether the server answers (a password it asks for counts).
func (r *Redis) ping() error {
	c, err := r.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Do("PING")
	if err != nil && err.Error() == "NOAUTH Authentication required." {
		return nil
	}
	return err
}

func (r *Redis) logFile() string { return filepath.Join(r.dir, "redis.log") }

// Stop kills the server (SIGKILL: the tests want an abrupt loss) and waits
// for it to exit.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// dial opens a test connection to the server.
func (r *Redis) dial(opts ...redis.DialOption) (redis.Conn, error) {
	base := []redis.DialOption{redis.DialConnectTimeout(5 * time.Second), redis.DialReadTimeout(10 * time.Second)}
	return redis.Dial("tcp", r.Addr(), append(append(base, r.dialOpts...), opts...)...)
}

// Log returns the server's log file.
func (r *Redis) Log() string {
	b, _ := os.ReadFile(r.logFile())
	return string(b)
}

// Conn opens a client connection for seeding and inspecting data.
func (r *Redis) Conn(opts ...redis.DialOption) redis.Conn {
	r.t.Helper()
	c, err := r.dial(opts...)
	if err != nil {
		r.t.Fatalf("connect to test redis: %v", err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// Do runs one command on a fresh connection and fails the test on error.
func (r *Redis) Do(cmd string, args ...any) any {
	r.t.Helper()
	c := r.Conn()
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		r.t.Fatalf("redis %s %v: %v", cmd, args, err)
	}
	return reply
}

// HSet writes a usage hash: fields alternate name, value.
func (r *Redis) HSet(key string, fieldValues ...any) {
	r.t.Helper()
	r.Do("HSET", append([]any{key}, fieldValues...)...)
}

// CommandCalls returns how many times cmd (lower case, e.g. "scan") has run,
// from INFO commandstats.
func (r *Redis) CommandCalls(cmd string) int {
	r.t.Helper()
	text, err := redis.String(r.Do("INFO", "commandstats"), nil)
	if err != nil {
		r.t.Fatal(err)
	}
	var calls int
	prefix := "cmdstat_" + cmd + ":calls="
	for _, line := range strings.Split(text, "\r\n") {
		if len(line) > len(prefix) && line[:len(prefix)] == prefix {
			if _, err := fmt.Sscanf(line[len(prefix):], "%d", &calls); err != nil {
				r.t.Fatalf("INFO commandstats: %q: %v", line, err)
			}
		}
	}
	return calls
}
