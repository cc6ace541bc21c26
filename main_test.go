package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "billing_exporter-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "billing_exporter")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exporter is a running billing_exporter process.
type exporter struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string
	output testserver.LogBuffer
	exited chan error
}

func (e *exporter) Write(p []byte) (int, error) {
	return e.output.Write(p)
}

// Output returns everything the process logged so far.
func (e *exporter) Output() string {
	return e.output.String()
}

// startExporter runs the binary on a free port with args and waits until it
// serves. env adds environment variables.
func startExporter(t *testing.T, env []string, args ...string) *exporter {
	t.Helper()
	return launchExporter(t, "http", http.DefaultClient, "/", env, args...)
}

// launchExporter runs the binary on a free loopback port and waits until
// client gets any answer on probe (basic auth may refuse it) over scheme.
func launchExporter(t *testing.T, scheme string, client *http.Client, probe string, env []string, args ...string) *exporter {
	t.Helper()
	return launchWrappedExporter(t, nil, scheme, client, probe, env, args...)
}

// launchWrappedExporter is launchExporter with the binary run under a
// wrapper command (e.g. prlimit … --); nil runs it directly.
func launchWrappedExporter(t *testing.T, wrapper []string, scheme string, client *http.Client, probe string, env []string, args ...string) *exporter {
	t.Helper()
	// The port FreePort gave may be taken by the time the exporter binds
	// it (another test's connection got it): the exporter then exits, and
	// is started again on another port, up to three times in all.
	for attempt := 1; ; attempt++ {
		e, err := tryExporter(t, wrapper, scheme, client, probe, env, args...)
		if err == nil {
			return e
		}
		if attempt == 3 || !strings.Contains(e.Output(), "address already in use") {
			t.Fatalf("%v\n%s", err, e.Output())
		}
	}
}

// tryExporter starts the exporter on a port FreePort gives and waits until
// it serves there: its probe answers, and it logged that it listens on that
// address (an answer alone could come from another test's server that took
// the port).
func tryExporter(t *testing.T, wrapper []string, scheme string, client *http.Client, probe string, env []string, args ...string) (*exporter, error) {
	t.Helper()
	port := testserver.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	e := &exporter{t: t, URL: scheme + "://" + addr, exited: make(chan error, 1)}
	argv := append(append(append([]string{}, wrapper...), binary, "--web.listen-address="+addr), args...)
	e.cmd = exec.Command(argv[0], argv[1:]...)
	e.cmd.Env = append(os.Environ(), env...)
	e.cmd.Stdout, e.cmd.Stderr = e, e
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.exited <- e.cmd.Wait() }()
	t.Cleanup(func() {
		_ = e.cmd.Process.Kill()
		<-e.exited
		if t.Failed() {
			t.Logf("exporter output:\n%s", e.Output())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(e.URL + probe)
		if err == nil {
			resp.Body.Close()
			if out := e.Output(); strings.Contains(out, "Listening on") && strings.Contains(out, addr) {
				return e, nil
			}
		}
		select {
		case err := <-e.exited:
			e.exited <- err
			return e, fmt.Errorf("exporter exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return e, fmt.Errorf("exporter not serving %s after 20s (%v)", scheme, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *exporter) scrape() *scrapetest.Result {
	e.t.Helper()
	r := scrapetest.Get(e.t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "5"})
	if r.Status != http.StatusOK {
		e.t.Fatalf("scrape: status %d: %s", r.Status, r.Body)
	}
	return r
}

// TestRedisOnlyEndToEnd is the exporter core's acceptance scenario, run
// against the real binary.
func TestRedisOnlyEndToEnd(t *testing.T) {
	redis := testserver.StartRedis(t)
	now := time.Now()
	cur := period.At(now, time.UTC)
	redis.HSet("usage:1:"+cur.ID, "messages", 4250, "storage", 1048576, "users", 3, "whatsappSessions", 1)
	redis.HSet("usage:2:"+cur.Previous().ID, "messages", 10)

	e := startExporter(t, nil, "--redis.addr="+redis.Addr(), "--redis.dial-timeout=500ms")
	r := e.scrape()
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"billing_usage", []string{"tenant_id", "1", "metric_type", "messages"}, 4250},
		{"billing_usage", []string{"tenant_id", "1", "metric_type", "storage"}, 1048576},
		{"billing_redis_usage_keys", nil, 2},
		{"billing_redis_up", nil, 1},
	}
	for _, c := range checks {
		if got := r.MustValue(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if s := r.Samples("billing_usage", "tenant_id", "2"); len(s) != 0 {
		t.Errorf("tenant 2 (previous period only) exported")
	}
	if mem := r.MustValue(t, "billing_redis_memory_bytes"); mem <= 0 {
		t.Errorf("billing_redis_memory_bytes = %v", mem)
	}
	if _, ok := r.Value("billing_exporter_build_info"); !ok {
		t.Error("billing_exporter_build_info missing")
	}
	scrapetest.PromtoolCheck(t, r.Body)

	redis.Stop()
	r = e.scrape()
	if got := r.MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v with Redis stopped", got)
	}
	if _, ok := r.Families["billing_usage"]; ok {
		t.Error("usage exported with Redis stopped")
	}
	redis.Start()
	if got := e.scrape().MustValue(t, "billing_redis_up"); got != 1 {
		t.Errorf("billing_redis_up = %v after Redis came back", got)
	}
}

func TestInvalidStartupInputExits(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "missing-password")
	cases := []struct {
		name  string
		args  []string
		names string // what the one-line message must mention
	}{
		{"unknown flag", []string{"--no.such-flag"}, "no.such-flag"},
		{"bad time zone", []string{"--billing.timezone=Mars/Olympus"}, "--billing.timezone"},
		{"bad key pattern", []string{"--usage.key-pattern=usage:{tenant_id}"}, "--usage.key-pattern"},
		{"unreadable password file", []string{"--redis.password-file=" + unreadable}, "--redis.password-file"},
		{"bad redis address", []string{"--redis.addr=ftp://x"}, "--redis.addr"},
		{"bad duration", []string{"--scrape.max-timeout=soon"}, "scrape.max-timeout"},
		{"bad read mode", []string{"--redis.read-mode=poll"}, "redis.read-mode"},
		{"negative resync interval", []string{"--redis.resync-interval=-1m"}, "redis.resync-interval"},
		{"bad web config", []string{"--web.config.file=" + unreadable}, "web"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runToExit(t, tc.args...)
			if code == 0 {
				t.Fatal("exited 0")
			}
			if last := lastLine(stderr); !strings.Contains(last, tc.names) {
				t.Errorf("last line %q does not name %q; stderr:\n%s", last, tc.names, stderr)
			}
		})
	}
}

// runToExit runs the binary, expecting it to stop by itself, and returns
// its exit code and standard error.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return runExit(t, nil, args...)
}

func itoa(n int) string { return strconv.Itoa(n) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestSecretsNeverShown(t *testing.T) {
	const password = "pl4nted-s3cret-value"
	redis := testserver.StartRedis(t, "--requirepass", password)
	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"password file", nil, []string{"--redis.addr=" + redis.Addr(), "--redis.password-file=" + pwFile}},
		{"environment", []string{"REDIS_PASSWORD=" + password}, []string{"--redis.addr=" + redis.Addr()}},
		{"wrong password in URL, right one from file", nil, []string{"--redis.addr=redis://:" + password + "-wrong@" + redis.Addr(), "--redis.password-file=" + pwFile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startExporter(t, tc.env, append(tc.args, "--log.level=debug")...)
			r := e.scrape()
			if got := r.MustValue(t, "billing_redis_up"); got != 1 {
				t.Errorf("billing_redis_up = %v: the password did not reach Redis", got)
			}
			landing := get(t, e.URL+"/")
			for what, text := range map[string]string{"metrics": string(r.Body), "landing page": landing, "logs": e.Output()} {
				if strings.Contains(text, password) {
					t.Errorf("the Redis password appears in the %s", what)
				}
			}
		})
	}
	// A wrong password: the error is logged, the secret is not.
	e := startExporter(t, []string{"REDIS_PASSWORD=" + password + "-wrong"}, "--redis.addr="+redis.Addr(), "--log.level=debug")
	if got := e.scrape().MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v with a wrong password", got)
	}
	if strings.Contains(e.Output(), password) {
		t.Error("the wrong password appears in the logs")
	}
}

func TestBasicAuthFromWebConfig(t *testing.T) {
	redis := testserver.StartRedis(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	redis.HSet("usage:1:"+period.At(time.Now(), time.UTC).ID, "messages", 1)
	e := startExporter(t, nil, "--redis.addr="+redis.Addr(), "--web.config.file="+cfg)
	for _, path := range []string{"/metrics", "/api/v1/tenants/1/usage", "/api/v1/plans", "/tenants", "/tenants/1", "/tenants?format=csv"} {
		for _, tc := range []struct {
			user, pass string
			want       int
		}{
			{"", "", http.StatusUnauthorized},
			{"prometheus", "wrong", http.StatusUnauthorized},
			{"prometheus", "scrape-pw", http.StatusOK},
		} {
			req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s as %q: status %d, want %d", path, tc.user, resp.StatusCode, tc.want)
			}
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	redis := testserver.StartRedis(t)
	stopGracefully(t, startExporter(t, nil, "--redis.addr="+redis.Addr()))
}

// stopGracefully sends SIGTERM and expects a clean exit.
func stopGracefully(t *testing.T, e *exporter) {
	t.Helper()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-e.exited:
		e.exited <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGTERM")
	}
	if !strings.Contains(e.Output(), "shutting down") {
		t.Errorf("no shutdown message in:\n%s", e.Output())
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(bufio.NewReader(resp.Body))
	return string(b)
}

// TestPromuBuildStampsRevision builds the release way and checks that
// build_info carries the commit.
func TestPromuBuildStampsRevision(t *testing.T) {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the test needs the git checkout): %v", err)
	}
	prefix := t.TempDir()
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "promu", "build", "--prefix", prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promu build: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(prefix, "billing_exporter"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if want := "revision: " + strings.TrimSpace(string(rev)); !strings.Contains(string(out), want) {
		t.Errorf("--version says %q, want it to contain %q", out, want)
	}
}

func TestHealthEndpointsReadNoSource(t *testing.T) {
	redis := testserver.StartRedis(t)
	e := startExporter(t, nil, "--redis.addr="+redis.Addr())
	before := redis.CommandCalls("scan") + redis.CommandCalls("hgetall")
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		if body := get(t, e.URL+path); body != "OK\n" {
			t.Errorf("%s = %q", path, body)
		}
	}
	if after := redis.CommandCalls("scan") + redis.CommandCalls("hgetall"); after != before {
		t.Errorf("health probes sent %d SCAN/HGETALL commands to Redis", after-before)
	}
	// Redis down: still healthy and ready (see internal/server.Health for why).
	redis.Stop()
	if body := get(t, e.URL+"/-/ready"); body != "OK\n" {
		t.Errorf("/-/ready with Redis down = %q", body)
	}
	resp, err := http.Post(e.URL+"/-/healthy", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /-/healthy = %d, want 405", resp.StatusCode)
	}
}
