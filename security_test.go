package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"golang.org/x/crypto/bcrypt"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// knownBug skips a test that pins down a bug in code outside this suite's
// files (reported, with its fix, to the code's owner), unless
// BILLING_EXPORTER_KNOWN_BUGS=1: then it runs, and fails until the bug is
// fixed. Drop the call once it passes.
func knownBug(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("BILLING_EXPORTER_KNOWN_BUGS") != "1" {
		t.Skipf("known bug, not fixed yet (run with BILLING_EXPORTER_KNOWN_BUGS=1 to see it fail): %s", what)
	}
}

// startExporterHTTPS runs the binary with a web config that turns TLS on,
// and waits until it answers client (any status: basic auth may refuse).
func startExporterHTTPS(t *testing.T, client *http.Client, args ...string) *exporter {
	t.Helper()
	return launchExporter(t, "https", client, "/-/healthy", nil, args...)
}

// TestWebConfigTLSAndBasicAuth: with --web.config.file holding a server
// certificate and bcrypt basic-auth users, over real TLS, every endpoint
// (landing page, metrics, API, OpenAPI document, health, the profiles of
// --web.enable-pprof) refuses a request
// without the right credentials with 401 and serves it with them; plain
// HTTP to the port, a client that does not trust the CA and a client
// limited to TLS 1.1 get no data.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	redis := testserver.StartRedis(t)
	redis.HSet("usage:1:"+period.At(time.Now(), time.UTC).ID, "messages", 5)
	ca := testserver.NewCA(t, "web CA")
	cert := ca.Server("exporter")
	const user, password = "prometheus", "scrape-pw-5e1f"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := writeFile(t, "web.yml", fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
basic_auth_users:
  %s: %s
`, cert.CertFile, cert.KeyFile, user, hash))
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.ClientConfig()}}
	e := startExporterHTTPS(t, client, "--redis.addr="+redis.Addr(), "--web.config.file="+webConfig, "--web.enable-pprof")

	endpoints := []string{"/", "/metrics", "/api/v1/tenants/1/usage", "/api/v1/tenants", "/api/v1/plans",
		"/api/v1/openapi.yaml", "/-/healthy", "/-/ready", "/tenants", "/tenants/1", "/tenants?format=csv",
		"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"}
	credentials := []struct {
		name       string
		user, pass string
		want       int
	}{
		{"none", "", "", http.StatusUnauthorized},
		{"wrong password", user, "wrong", http.StatusUnauthorized},
		{"unknown user", "nobody", password, http.StatusUnauthorized},
		{"the password's hash as password", user, string(hash), http.StatusUnauthorized},
		{"right", user, password, http.StatusOK},
	}
	for _, path := range endpoints {
		for _, c := range credentials {
			t.Run(path+" "+c.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
				if c.user != "" {
					req.SetBasicAuth(c.user, c.pass)
				}
				f := doFetch(client, req)
				if f.err != nil {
					t.Fatal(f.err)
				}
				if f.status != c.want {
					t.Fatalf("status %d, want %d: %.200s", f.status, c.want, f.body)
				}
				if c.want == http.StatusUnauthorized {
					if f.header.Get("WWW-Authenticate") == "" {
						t.Error("401 without WWW-Authenticate")
					}
					if strings.Contains(string(f.body), "billing_") || strings.Contains(string(f.body), "tenant") {
						t.Errorf("a refused request got data: %.200s", f.body)
					}
				}
			})
		}
	}

	// The reload endpoint too: POST without credentials is refused before
	// anything is reloaded.
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"", "", http.StatusUnauthorized}, {user, "wrong", http.StatusUnauthorized}, {user, password, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/-/reload", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		if f := doFetch(client, req); f.err != nil || f.status != c.want {
			t.Errorf("POST /-/reload as %q: status %d, %v; want %d", c.user, f.status, f.err, c.want)
		}
	}
	// The exporter's log reaches the test through a pipe: wait for the
	// line before counting.
	eventually(t, "the authenticated reload logged", func() bool {
		return strings.Contains(e.Output(), "configuration reloaded")
	})
	if n := strings.Count(e.Output(), "configuration reloaded"); n != 1 {
		t.Errorf("%d reloads logged, want 1 (only the authenticated POST)", n)
	}

	// No other way in.
	plainURL := strings.Replace(e.URL, "https://", "http://", 1)
	for _, path := range []string{"/metrics", "/api/v1/tenants/1/usage"} {
		req, _ := http.NewRequest(http.MethodGet, plainURL+path, nil)
		req.SetBasicAuth(user, password)
		f := doFetch(&http.Client{Timeout: 20 * time.Second}, req)
		if f.err == nil && (f.status == http.StatusOK || strings.Contains(string(f.body), "billing_")) {
			t.Errorf("plain HTTP %s: status %d: %.200s", path, f.status, f.body)
		}
	}
	other := testserver.NewCA(t, "another CA")
	for name, cfg := range map[string]*tls.Config{
		"a client trusting another CA": other.ClientConfig(),
		"a TLS 1.1 client":             {RootCAs: ca.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.URL+"/metrics", nil)
		req.SetBasicAuth(user, password)
		f := doFetch(&http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, req)
		if f.err == nil {
			t.Errorf("%s got an answer: %d", name, f.status)
		}
	}
	if strings.Contains(e.Output(), password) {
		t.Error("the basic-auth password appears in the logs")
	}
}

func doFetch(client *http.Client, req *http.Request) fetched {
	resp, err := client.Do(req)
	if err != nil {
		return fetched{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return fetched{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// TestRedisTLS: the exporter reads a TLS-only Redis (rediss://) when it
// trusts the server's CA, with and without a client certificate as the
// server requires; any mismatch (another CA, the system roots, a server
// name the certificate does not hold, no client certificate where one is
// required) is an honest billing_redis_up 0 and a log line that says what.
func TestRedisTLS(t *testing.T) {
	ca := testserver.NewCA(t, "redis CA")
	other := testserver.NewCA(t, "another CA")
	client := ca.Client("billing-exporter")
	stranger := other.Client("stranger")
	cases := []struct {
		name          string
		requireClient bool
		args          []string
		up            bool
		log           string // in the exporter's log when down
	}{
		{"CA trusted", false, []string{"--redis.tls-ca-file=" + ca.CertFile}, true, ""},
		{"CA trusted, server name given", false, []string{"--redis.tls-ca-file=" + ca.CertFile, "--redis.tls-server-name=localhost"}, true, ""},
		{"client certificate required and given", true,
			[]string{"--redis.tls-ca-file=" + ca.CertFile, "--redis.tls-cert-file=" + client.CertFile, "--redis.tls-key-file=" + client.KeyFile}, true, ""},
		{"another CA", false, []string{"--redis.tls-ca-file=" + other.CertFile}, false, "certificate signed by unknown authority"},
		{"system roots", false, nil, false, "certificate signed by unknown authority"},
		{"server name not in the certificate", false,
			[]string{"--redis.tls-ca-file=" + ca.CertFile, "--redis.tls-server-name=redis.example.org"}, false, "redis.example.org"},
		{"client certificate required, none given", true, []string{"--redis.tls-ca-file=" + ca.CertFile}, false, "connect to rediss://127.0.0.1"},
		{"client certificate from another CA", true,
			[]string{"--redis.tls-ca-file=" + ca.CertFile, "--redis.tls-cert-file=" + stranger.CertFile, "--redis.tls-key-file=" + stranger.KeyFile}, false, ""},
	}
	cur := period.At(time.Now(), time.UTC).ID
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testserver.StartRedisTLS(t, ca, tc.requireClient)
			r.Do("HSET", "usage:1:"+cur, "messages", 4250, "users", 3)
			e := startExporter(t, nil, append([]string{"--redis.addr=" + r.URL(), "--redis.dial-timeout=2s"}, tc.args...)...)
			res := scrapeBy(t, e, 5*time.Second)
			if !tc.up {
				assertRedisDownHonestly(t, res)
				if tc.log != "" && !strings.Contains(e.Output(), tc.log) {
					t.Errorf("the log does not say %q:\n%s", tc.log, e.Output())
				}
				return
			}
			if got := res.MustValue(t, "billing_redis_up"); got != 1 {
				t.Fatalf("billing_redis_up = %v over TLS", got)
			}
			if got := res.MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 4250 {
				t.Errorf("messages = %v over TLS", got)
			}
			if _, ok := res.Value("billing_redis_memory_bytes"); !ok {
				t.Error("no INFO over TLS")
			}
			scrapetest.PromtoolCheck(t, res.Body)
		})
	}
	// A client certificate needs its key: refused at start, in one line.
	code, stderr := runToExit(t, "--redis.addr=rediss://127.0.0.1:6379", "--redis.tls-cert-file="+client.CertFile)
	if code == 0 || !strings.Contains(lastLine(stderr), "--redis.tls") {
		t.Errorf("certificate without key: exit %d, %q", code, stderr)
	}
}

// scanLeastPrivilegeACL is the recommended Redis ACL of the exporter's
// user (besides its password) in --redis.read-mode=scan: read-only access
// to the usage keys and exactly the commands it sends. AUTH needs no
// permission.
var scanLeastPrivilegeACL = []string{"on", "resetkeys", "%R~usage:*", "resetchannels", "-@all",
	"+scan", "+hgetall", "+info", "+ping", "+client|setname"}

// leastPrivilegeACL is the same for the default read mode, track: key
// tracking on a connection of its own, its invalidations on a subscribed
// one, EXISTS to learn whether a changed key of another period still
// exists.
var leastPrivilegeACL = append(slices.Clone(scanLeastPrivilegeACL),
	"+exists", "+client|id", "+client|tracking", "+client|trackinginfo", "+subscribe", "&__redis__:invalidate")

// aclDenials returns the commands ACL LOG recorded as denied for user.
func aclDenials(t *testing.T, admin redis.Conn, user string) []string {
	t.Helper()
	entries, err := redis.Values(admin.Do("ACL", "LOG"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		fields, err := redis.Values(e, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := redis.String(fields[i], nil)
			v, _ := redis.String(fields[i+1], nil)
			m[k] = v
		}
		if m["username"] == user {
			out = append(out, m["reason"]+":"+m["object"])
		}
	}
	return out
}

// TestRedisACLLeastPrivilege: an ACL user with leastPrivilegeACL is all the
// exporter needs (data exact, INFO read, nothing denied in ACL LOG), and
// each grant is needed: without it the exporter cannot read (or loses INFO,
// or has its connection checks refused). The user is given as
// redis://exporter:placeholder@host with the password from
// --redis.password-file, which overrides the placeholder.
func TestRedisACLLeastPrivilege(t *testing.T) {
	const adminPW, exporterPW = "admin-pw-77c2", "exporter-pw-3a9d"
	cur := period.At(time.Now(), time.UTC).ID
	without := func(grant string) []string {
		var out []string
		for _, g := range leastPrivilegeACL {
			if g != grant {
				out = append(out, g)
			}
		}
		return out
	}
	args := map[string][]string{"least privilege, scan mode": {"--redis.read-mode=scan"}}
	mode := func(want string) func(t *testing.T, r *scrapetest.Result) {
		return func(t *testing.T, r *scrapetest.Result) {
			if got := r.MustValue(t, "billing_redis_read_mode", "mode", want); got != 1 {
				t.Errorf("billing_redis_read_mode{mode=%q} = %v", want, got)
			}
		}
	}
	cases := []struct {
		name   string
		acl    []string
		up     bool
		denied string // an ACL LOG entry the exporter causes
		check  func(t *testing.T, r *scrapetest.Result)
	}{
		{"least privilege", leastPrivilegeACL, true, "", func(t *testing.T, r *scrapetest.Result) {
			if _, ok := r.Value("billing_redis_memory_bytes"); !ok {
				t.Error("no INFO with the least-privilege user")
			}
			mode("track")(t, r)
		}},
		{"least privilege, scan mode", scanLeastPrivilegeACL, true, "", mode("scan")},
		// Tracking refused: reads fall back to scan mode, exact.
		{"scan mode's grants in track mode", scanLeastPrivilegeACL, true, "command:client|id", func(t *testing.T, r *scrapetest.Result) {
			mode("scan")(t, r)
			if got := r.MustValue(t, "billing_redis_tracking_unavailable"); got != 1 {
				t.Errorf("billing_redis_tracking_unavailable = %v", got)
			}
		}},
		{"without SUBSCRIBE", without("+subscribe"), true, "command:subscribe", mode("scan")},
		{"without SCAN", without("+scan"), false, "command:scan", nil},
		{"without HGETALL", without("+hgetall"), false, "command:hgetall", nil},
		// Naming the connection is best effort: the read goes on.
		{"without CLIENT SETNAME", without("+client|setname"), true, "command:client|setname", nil},
		{"keys other than usage:*", append(without("%R~usage:*"), "%R~other:*"), false, "key:usage:1:" + cur, nil},
		{"without INFO", without("+info"), true, "command:info", func(t *testing.T, r *scrapetest.Result) {
			if _, ok := r.Value("billing_redis_memory_bytes"); ok {
				t.Error("INFO read although denied")
			}
			if v := r.MustValue(t, "billing_redis_info_up"); v != 0 {
				t.Errorf("billing_redis_info_up %v with INFO denied, want 0", v)
			}
		}},
		// PING checks a pooled connection idle for a second or more before
		// use; denied, every such connection is thrown away and dialled
		// again. The data still comes through.
		{"without PING", without("+ping"), true, "command:ping", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testserver.StartRedis(t, "--requirepass", adminPW)
			admin := r.Conn(redis.DialPassword(adminPW))
			if _, err := admin.Do("HSET", "usage:1:"+cur, "messages", 4250, "users", 3); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Do("ACL", redis.Args{"SETUSER", "exporter"}.AddFlat(tc.acl).Add(">"+exporterPW)...); err != nil {
				t.Fatalf("ACL SETUSER %v: %v", tc.acl, err)
			}
			e := startExporter(t, nil, append([]string{"--redis.addr=redis://exporter:placeholder@" + r.Addr(),
				"--redis.password-file=" + writeFile(t, "pw", exporterPW+"\n")}, args[tc.name]...)...)
			var res *scrapetest.Result
			if tc.denied == "command:ping" {
				// Scrape a second apart until a pooled connection was
				// checked, and the check refused.
				eventually(t, "a PING denied", func() bool {
					res = scrapeBy(t, e, 5*time.Second)
					time.Sleep(1100 * time.Millisecond)
					return strings.Contains(strings.Join(aclDenials(t, admin, "exporter"), " "), "command:ping")
				})
			} else {
				res = scrapeBy(t, e, 5*time.Second)
			}
			denials := aclDenials(t, admin, "exporter")
			if tc.denied == "" && len(denials) > 0 {
				t.Errorf("ACL LOG has denials for the exporter: %v", denials)
			}
			if tc.denied != "" && !strings.Contains(strings.Join(denials, " "), tc.denied) {
				t.Errorf("ACL LOG %v lacks %q", denials, tc.denied)
			}
			if !tc.up {
				assertRedisDownHonestly(t, res)
				return
			}
			if got := res.MustValue(t, "billing_redis_up"); got != 1 {
				t.Fatalf("billing_redis_up = %v", got)
			}
			if got := res.MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 4250 {
				t.Errorf("messages = %v", got)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
			// The API reads with the same user.
			if f := fetch(http.DefaultClient, e.URL+"/api/v1/tenants/1/usage", nil); f.status != http.StatusOK {
				t.Errorf("API: %d %s", f.status, f.body)
			}
			if strings.Contains(e.Output(), exporterPW) {
				t.Error("the exporter's password appears in the logs")
			}
		})
	}
}

// TestRedisACLUserFromURL: redis://exporter@host (user, no password in the
// URL) with the password from --redis.password-file must authenticate as
// user exporter. Today ParseTarget takes a lone userinfo for a password
// (redigo's convention for redis://password@host) and the password file
// then replaces it: the user name is lost and AUTH goes to the default
// user, which fails (or, worse, succeeds as the default user).
func TestRedisACLUserFromURL(t *testing.T) {
	const adminPW, exporterPW = "admin-pw-77c2", "exporter-pw-3a9d"
	r := testserver.StartRedis(t, "--requirepass", adminPW)
	admin := r.Conn(redis.DialPassword(adminPW))
	cur := period.At(time.Now(), time.UTC).ID
	if _, err := admin.Do("HSET", "usage:1:"+cur, "messages", 4250); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Do("ACL", redis.Args{"SETUSER", "exporter"}.AddFlat(leastPrivilegeACL).Add(">"+exporterPW)...); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, nil, "--redis.addr=redis://exporter@"+r.Addr(),
		"--redis.password-file="+writeFile(t, "pw", exporterPW+"\n"))
	if got := scrapeBy(t, e, 5*time.Second).MustValue(t, "billing_redis_up"); got != 1 {
		t.Errorf("billing_redis_up = %v with redis://exporter@host and the password from a file", got)
	}
}

// TestSecretsNeverLeak plants a unique Redis password and a unique DSN
// password, runs the exporter at debug level through every path (good
// reads, a wrong Redis password, Redis down, PostgreSQL down, PostgreSQL
// never reachable, bad API requests of every kind, startup errors about
// the very values holding the secrets) and greps every output: logs,
// /metrics, API bodies, the landing page, and startup error lines.
func TestSecretsNeverLeak(t *testing.T) {
	redisPW := "RedisSecret" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dsnPW := "DsnSecret" + strconv.FormatInt(time.Now().UnixNano()+1, 36)
	secrets := []string{redisPW, dsnPW}
	redisSrv := testserver.StartRedis(t, "--requirepass", redisPW)
	admin := redisSrv.Conn(redis.DialPassword(redisPW))
	cur := period.At(time.Now(), time.UTC).ID
	if _, err := admin.Do("HSET", "usage:1:"+cur, "messages", 4250); err != nil {
		t.Fatal(err)
	}
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(plansSQL)
	// Trust authentication ignores the password, which the exporter still
	// holds and must never show.
	dsn := strings.Replace(pg.DSN(), "postgres@", "postgres:"+dsnPW+"@", 1)

	var outputs []struct{ what, text string }
	record := func(what string, text []byte) {
		outputs = append(outputs, struct{ what, text string }{what, string(text)})
	}

	apiPaths := []string{
		"/api/v1/tenants/1/usage", "/api/v1/tenants/404/usage", "/api/v1/tenants/%2A/usage",
		"/api/v1/tenants/" + strings.Repeat("9", 5000) + "/usage", "/api/v1/tenants?limit=0",
		"/api/v1/tenants?cursor=bm90LWEtY3Vyc29y", "/api/v1/tenants?password=1", "/api/v1/plans", "/api/v1/nope",
		"/api/v1/tenants/%FF/usage", "/api/v1/openapi.yaml",
		"/tenants", "/tenants/1", "/tenants/404", "/tenants?band=x", "/tenants?format=csv",
	}
	drive := func(e *exporter, phase string) {
		for _, path := range append([]string{"/", "/metrics"}, apiPaths...) {
			f := fetch(&http.Client{Timeout: 30 * time.Second}, e.URL+path, map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "5"})
			if f.err != nil {
				t.Fatalf("%s %s: %v", phase, path, f.err)
			}
			if f.status >= 500 && !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/tenants") {
				t.Errorf("%s %s: %d", phase, path, f.status)
			}
			record(phase+" "+path, f.body)
		}
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/api/v1/plans", strings.NewReader("{}"))
		f := doFetch(http.DefaultClient, req)
		record(phase+" POST", f.body)
	}

	e := startExporter(t, nil, "--redis.addr="+redisSrv.Addr(), "--log.level=debug",
		"--redis.password-file="+writeFile(t, "redis-pw", redisPW+"\n"),
		"--postgres.dsn-file="+writeFile(t, "dsn", dsn+"\n"),
		"--config.file="+writeFile(t, "config.yml", defaultsYAML))
	if got := scrapeBy(t, e, 5*time.Second).MustValue(t, "billing_redis_up"); got != 1 {
		t.Fatalf("billing_redis_up = %v: the planted password did not work", got)
	}
	drive(e, "healthy")
	pg.Stop()
	drive(e, "postgres down")
	redisSrv.Stop()
	drive(e, "redis and postgres down")
	redisSrv.Start()
	pg.Start()
	pollScrape(t, e, "recovery", redisUp)
	record("logs", []byte(e.Output()))

	// The wrong Redis password (which contains the planted one) and a DSN
	// that never connects.
	closed := testserver.FreePort(t)
	wrong := startExporter(t, []string{"REDIS_PASSWORD=" + redisPW + "-wrong",
		"BILLING_EXPORTER_POSTGRES_DSN=postgres://u:" + dsnPW + "@127.0.0.1:" + strconv.Itoa(closed) + "/db?connect_timeout=1"},
		"--redis.addr="+redisSrv.Addr(), "--log.level=debug")
	drive(wrong, "wrong password, postgres never read")
	record("logs (wrong password)", []byte(wrong.Output()))

	// Startup errors about the values that hold the secrets.
	for _, args := range [][]string{
		{"--redis.addr=redis://:" + redisPW + "@127.0.0.1:6379/notadb"},
		{"--redis.addr=redis://:" + redisPW + "@127.0.0.1:6379?x=1"},
		{"--redis.addr=redis://:" + redisPW + "@127.0.0.1:bad"},
		{"--redis.addr=ftp://:" + redisPW + "@127.0.0.1:6379"},
		{"--redis.addr=:" + redisPW + "@127.0.0.1:6379"},
		{"--postgres.dsn-file=" + writeFile(t, "bad-dsn", "postgres://u:"+dsnPW+"@127.0.0.1:notaport/db\n")},
		{"--postgres.dsn-file=" + writeFile(t, "bad-dsn2", "host=127.0.0.1 password="+dsnPW+" sslmode=bogus\n")},
		{"--postgres.dsn-file=" + writeFile(t, "bad-dsn3", "mysql://u:"+dsnPW+"@127.0.0.1/db\n")},
	} {
		code, stderr := runToExit(t, append(args, "--log.level=debug")...)
		if code == 0 {
			t.Errorf("%v: exited 0", args)
		}
		record("startup error "+strings.SplitN(args[0], "=", 2)[0], []byte(stderr))
	}

	for _, o := range outputs {
		for _, s := range secrets {
			if strings.Contains(o.text, s) {
				i := strings.Index(o.text, s)
				t.Errorf("a planted secret appears in %s: …%s…", o.what, o.text[max(0, i-120):min(len(o.text), i+len(s)+40)])
			}
		}
	}
	if len(outputs) < 40 {
		t.Errorf("only %d outputs checked", len(outputs))
	}
	var nonEmpty error
	for _, o := range outputs {
		if strings.HasPrefix(o.what, "logs") && len(o.text) < 100 {
			nonEmpty = errors.Join(nonEmpty, fmt.Errorf("%s is nearly empty", o.what))
		}
	}
	if nonEmpty != nil {
		t.Error(nonEmpty)
	}
}

// TestMalformedSecretsNeverLeak plants marker passwords in every malformed
// shape of DSN and Redis address and finds no piece of one (four characters
// or more) in the start-up error, the reload response or the debug log.
func TestMalformedSecretsNeverLeak(t *testing.T) {
	malformedDSNs := []struct{ dsn, password string }{
		{`host=127.0.0.1 port=1 user=u password=Kxq Zzyvw dbname=x`, "Kxq Zzyvw"},
		{`host=127.0.0.1 port=1 password Kxq-Zzyvw`, "Kxq-Zzyvw"},
		{`host=127.0.0.1 port=1 user=u password='Kxq Zzyvw dbname=x`, "Kxq Zzyvw"},
		{`host=127.0.0.1 port=1 password="Kxq Zzyvw" dbname=x`, `"Kxq Zzyvw"`},
		{`host=127.0.0.1 port=1 password=Kxq 'Zzyvw=x`, "Kxq 'Zzyvw=x"},
		{`host=127.0.0.1 port=1 password=Kxq Zzyvw=x`, "Kxq Zzyvw=x"},
		{`host=127.0.0.1 port=nope password='Kxq\ Zzyvw'`, `Kxq\ Zzyvw`},
		{`postgres://u:Kxq@Zzyvw@127.0.0.1:1/x`, "Kxq@Zzyvw"},
		{`postgres://u:Kxq:Zz@yvw@127.0.0.1:1/x`, "Kxq:Zz@yvw"},
		{`postgres://u:Kxq/Zzyvw@127.0.0.1:1/x`, "Kxq/Zzyvw"},
		{`postgres://u:5432/Zzyvw@127.0.0.1:1/x`, "5432/Zzyvw"},
		{`postgres://u:Kxq%zzZzyvw@127.0.0.1:1/x`, "Kxq%zzZzyvw"},
		{`postgres://u:Kxq%2Zzyvw@127.0.0.1:1/x`, "Kxq%2Zzyvw"},
		{`postgres://u:Kxq Zzyvw@127.0.0.1:1/x`, "Kxq Zzyvw"},
		{`postgres://u:Kxq"Zzyvw@127.0.0.1:nope/x`, `Kxq"Zzyvw`},
		{`postgres://u@127.0.0.1:1/x?password=Kxq&Zzyvw`, "Kxq&Zzyvw"},
		{`postgres://u@127.0.0.1:1/x?password=Kxq&Zzyvw=1`, "Kxq&Zzyvw=1"},
		{`postgres://u:Kxq-Zzyvw@[::1/x`, "Kxq-Zzyvw"},
		{`postgres://u:Kxq-Zzyvw@127.0.0.1:1/x?sslmode=Zzyvw`, "Kxq-Zzyvw"},
		{`mysql://u:Kxq-Zzyvw@127.0.0.1/x`, "Kxq-Zzyvw"},
	}
	// Odd passwords the driver reads whole: they connect, to a closed port.
	oddDSNs := []struct{ dsn, password string }{
		{`host=127.0.0.1 port=1 user=u password=Kxq\ Zzyvw connect_timeout=2`, `Kxq\ Zzyvw`},
		{`postgres://u:Kxq:Zzyvw@127.0.0.1:1/x?connect_timeout=2`, "Kxq:Zzyvw"},
		{`postgres://u:Kxq%40Zzyvw@127.0.0.1:1/x?connect_timeout=2`, "Kxq%40Zzyvw"},
		{`postgres://u:Kxq?Zzyvw@127.0.0.1:1/x?connect_timeout=2`, "Kxq?Zzyvw"},
	}
	closed := strconv.Itoa(testserver.FreePort(t))
	malformedAddrs := []struct{ addr, password string }{
		{"redis://u:Mrk#Wjqpv@127.0.0.1:" + closed, "Mrk#Wjqpv"},
		{"redis://u:12345#Wjqpv@127.0.0.1:" + closed, "12345#Wjqpv"},
		{"redis://u:Mrk/Wjqpv@127.0.0.1:" + closed, "Mrk/Wjqpv"},
		{"redis://u:Mrk?Wjqpv@127.0.0.1:" + closed, "Mrk?Wjqpv"},
		{"redis://u:Mrk%zzWjqpv@127.0.0.1:" + closed, "Mrk%zzWjqpv"},
		{"redis://u:Mrk Wjqpv@127.0.0.1:" + closed, "Mrk Wjqpv"},
		{"redis:/u:Mrk-Wjqpv@127.0.0.1:" + closed, "Mrk-Wjqpv"},
		{"Mrk-Wjqpv", "Mrk-Wjqpv"},
	}

	type output struct{ what, text, password string }
	var outputs []output
	for i, c := range malformedDSNs {
		file := writeFile(t, "dsn"+strconv.Itoa(i), c.dsn+"\n")
		code, stderr := runToExit(t, "--redis.addr=127.0.0.1:"+closed, "--postgres.dsn-file="+file, "--log.level=debug")
		if code == 0 || !strings.Contains(stderr, file) {
			t.Errorf("start with DSN %d: exit %d without naming %s: %s", i, code, file, stderr)
		}
		outputs = append(outputs, output{"start-up error, DSN " + strconv.Itoa(i), stderr, c.password})
	}
	code, stderr := runExit(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + malformedDSNs[0].dsn}, "--redis.addr=127.0.0.1:"+closed)
	if code == 0 || !strings.Contains(stderr, "$BILLING_EXPORTER_POSTGRES_DSN") {
		t.Errorf("start with a DSN in the environment: exit %d without naming the variable: %s", code, stderr)
	}
	outputs = append(outputs, output{"start-up error, DSN from the environment", stderr, malformedDSNs[0].password})
	for i, c := range malformedAddrs {
		code, stderr := runToExit(t, "--redis.addr="+c.addr, "--log.level=debug")
		if code == 0 {
			t.Errorf("start with Redis address %d: exit 0", i)
		}
		outputs = append(outputs, output{"start-up error, Redis address " + strconv.Itoa(i), stderr, c.password})
	}

	dsnFile := writeFile(t, "dsn", "postgres://u@127.0.0.1:1/x?connect_timeout=2\n")
	e := startExporter(t, nil, "--redis.addr=127.0.0.1:"+closed, "--postgres.dsn-file="+dsnFile, "--log.level=debug")
	for i, c := range malformedDSNs {
		writeTo(t, dsnFile, c.dsn+"\n")
		status, body := e.reloadWith("http")
		if status != http.StatusInternalServerError || !strings.Contains(body, dsnFile) {
			t.Errorf("reload with DSN %d: %d %q; want 500 naming %s", i, status, body, dsnFile)
		}
		outputs = append(outputs, output{"reload response, DSN " + strconv.Itoa(i), body, c.password})
	}
	for i, c := range oddDSNs {
		writeTo(t, dsnFile, c.dsn+"\n")
		status, body := e.reloadWith("http")
		if status != http.StatusOK {
			t.Errorf("reload with odd DSN %d: %d %q", i, status, body)
		}
		outputs = append(outputs, output{"reload response, odd DSN " + strconv.Itoa(i), body, c.password})
		e.scrape()
	}
	logs := e.Output()
	if !strings.Contains(logs, "plans") {
		t.Errorf("the log says nothing of plans:\n%s", logs)
	}
	for _, c := range append(malformedDSNs, oddDSNs...) {
		outputs = append(outputs, output{"debug log", logs, c.password})
	}

	for _, o := range outputs {
		if p := passwordPiece(o.text, o.password); p != "" {
			i := strings.Index(o.text, p)
			t.Errorf("%q, a piece of %q, appears in the %s: …%s…", p, o.password, o.what, o.text[max(0, i-120):min(len(o.text), i+len(p)+40)])
		}
	}
}

// passwordPiece returns the first piece of password, four characters or
// more, found in text.
func passwordPiece(text, password string) string {
	for i := 0; i+4 <= len(password); i++ {
		if p := password[i : i+4]; strings.Contains(text, p) {
			return p
		}
	}
	return ""
}
