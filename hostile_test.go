package main

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestHostileRedisContents fills Redis with what a buggy or hostile writer
// could put there, next to two well-behaved tenants, and scrapes the real
// binary: the exposition stays valid (promtool clean, parseable), the
// process stays up, every bad item is skipped and counted under its reason
// in billing_exporter_invalid_data_items, and every good number (the two
// tenants', and the good fields of tenants with bad ones) is exact.
func TestHostileRedisContents(t *testing.T) {
	r := testserver.StartRedis(t)
	c := r.Conn(redis.DialReadTimeout(30 * time.Second))
	now := time.Now()
	cur, prev := period.At(now, time.UTC).ID, period.At(now, time.UTC).Previous().ID
	key := func(tenant string) string { return "usage:" + tenant + ":" + cur }
	hset := func(k string, fv ...any) {
		t.Helper()
		if _, err := c.Do("HSET", append([]any{k}, fv...)...); err != nil {
			t.Fatalf("HSET %q: %v", k, err)
		}
	}
	want := map[string]int{"malformed_key": 0, "wrong_type": 0, "invalid_field": 0, "invalid_value": 0,
		"oversized_hash": 0, "metric_type_limit": 0}
	keys := 0 // keys that parse as usage keys, all periods

	// Well-behaved tenants: their numbers must be exact.
	hset(key("1"), "messages", 4250, "storage", 1048576, "users", 3, "whatsappSessions", 1)
	hset(key("2"), "messages", 10)
	hset("usage:1:"+prev, "messages", 999)
	keys += 3

	// Values that are not non-negative integers fitting in int64.
	hset(key("huge"), "messages", "99999999999999999999", "users", "9223372036854775807")
	hset(key("neg"), "messages", "-5", "users", 2)
	hset(key("float"), "messages", "1.5", "storage", "1e3", "users", " 12", "whatsappSessions", "", "apiCalls", 0)
	hset(key("junk"), "messages", "\x00\x01\xff", "storage", strings.Repeat("9", 1000), "users", 7)
	want["invalid_value"] += 1 + 1 + 4 + 2
	keys += 4
	// A hash larger than --redis.max-reply-bytes (1 MiB): skipped whole.
	hset(key("blob"), "storage", strings.Repeat("9", 1<<20), "users", 7)
	want["oversized_hash"]++
	keys++

	// A hash with 10,000 fields would be 10,000 further metric types: the
	// cap of 16 keeps the 4 configured and 12 others, those most tenants
	// have (one each here), by name: apiCalls, back\slash, f0, f1, f10,
	// f100, f1000 ... f1005. The other 9,990 fields of this hash and 3 of
	// tenant "fields" are skipped and counted.
	wide := redis.Args{key("wide")}
	for i := range 10000 {
		wide = wide.Add("f"+strconv.Itoa(i), i)
	}
	hset(wide[0].(string), wide[1:]...)
	want["metric_type_limit"] += 9990 + 3
	keys++

	// Field names: control characters, invalid UTF-8 and over 64 bytes are
	// skipped; quotes, backslashes and braces are printable, kept, and
	// escaped in the exposition.
	hset(key("fields"), "new\nline", 1, "\xff\xfe", 2, strings.Repeat("x", 65), 3,
		`quo"te`, 4, `back\slash`, 5, "{brace}", 6, "messages", 7, "sp ace", 8)
	want["invalid_field"] += 3
	keys++

	// Key names: control characters, invalid UTF-8, glob characters, over
	// 128 bytes, and bad periods do not parse; quotes and spaces do.
	for _, bad := range []string{key("new\nline"), key("\xff\xfe"), key(`back\slash`), key("tab\tx"),
		key(strings.Repeat("a", 129)), "usage:3:202613", "usage:3:2026-1"} {
		hset(bad, "messages", 1)
		want["malformed_key"]++
	}
	hset(key(`quo"te`), "messages", 11)
	hset(key("sp ace"), "messages", 12)
	hset(key(strings.Repeat("b", 128)), "messages", 13)
	keys += 3
	// Not matched by the SCAN pattern at all: neither counted nor skipped.
	hset("usage:nocolon", "messages", 1)
	hset("other:1:"+cur, "messages", 1)

	// Usage keys of other types: skipped this period, only counted in a
	// past one (it is not read).
	if _, err := c.Do("SET", key("string"), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do("RPUSH", key("list"), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do("SET", "usage:oldstring:"+prev, "x"); err != nil {
		t.Fatal(err)
	}
	want["wrong_type"] += 2
	keys += 3

	// An empty hash cannot exist in Redis: HSET needs a field, and removing
	// a hash's last field removes the key. Nothing to skip or count.
	if _, err := c.Do("HSET", key("empty")); err == nil {
		t.Error("HSET without fields succeeded: an empty hash exists after all")
	}
	hset(key("emptied"), "messages", 1)
	if _, err := c.Do("HDEL", key("emptied"), "messages"); err != nil {
		t.Fatal(err)
	}
	if n, _ := redis.Int(c.Do("EXISTS", key("emptied"))); n != 0 {
		t.Error("a hash without fields still exists")
	}

	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	var res *scrapetest.Result
	for i := range 2 { // twice: the process survives it, the answer is stable
		res = scrapeBy(t, e, 20*time.Second)
		if got := res.MustValue(t, "billing_redis_up"); got != 1 {
			t.Fatalf("scrape %d: billing_redis_up = %v", i, got)
		}
	}
	scrapetest.PromtoolCheck(t, res.Body)

	for reason, n := range want {
		if got := res.MustValue(t, "billing_exporter_invalid_data_items", "source", "redis", "reason", reason); got != float64(n) {
			t.Errorf("invalid_data_items{reason=%q} = %v, want %d", reason, got, n)
		}
	}
	if got := res.MustValue(t, "billing_redis_usage_keys"); got != float64(keys) {
		t.Errorf("billing_redis_usage_keys = %v, want %d", got, keys)
	}
	exact := []struct {
		tenant, field string
		want          float64
	}{
		{"1", "messages", 4250}, {"1", "storage", 1048576}, {"1", "users", 3}, {"1", "whatsappSessions", 1},
		{"2", "messages", 10},
		{"huge", "users", 9223372036854775807},
		{"neg", "users", 2},
		{"float", "apiCalls", 0},
		{"junk", "users", 7},
		{"fields", `back\slash`, 5}, {"fields", "messages", 7},
		{`quo"te`, "messages", 11}, {"sp ace", "messages", 12}, {strings.Repeat("b", 128), "messages", 13},
		{"wide", "f0", 0}, {"wide", "f1005", 1005},
	}
	for _, x := range exact {
		if got := res.MustValue(t, "billing_usage", "tenant_id", x.tenant, "metric_type", x.field); got != x.want {
			t.Errorf("billing_usage{tenant_id=%q,metric_type=%q} = %v, want %v", x.tenant, x.field, got, x.want)
		}
	}
	series := map[string]int{}
	for _, m := range res.Samples("billing_usage") {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "tenant_id" {
				series[lp.GetValue()]++
			}
		}
	}
	for tenant, n := range map[string]int{"1": 4, "2": 1, "huge": 1, "neg": 1, "float": 1, "junk": 1,
		"fields": 2, "wide": 10, `quo"te`: 1, "sp ace": 1} {
		if series[tenant] != n {
			t.Errorf("tenant %q has %d billing_usage series, want %d", tenant, series[tenant], n)
		}
	}
	if len(series) != 11 {
		t.Errorf("%d tenants exported, want 11: %v", len(series), series)
	}

	// The API answers for the odd but valid ids, in valid JSON.
	for _, id := range []string{`quo"te`, "sp ace", "fields"} {
		f := fetch(http.DefaultClient, e.URL+"/api/v1/tenants/"+url.PathEscape(id)+"/usage", nil)
		var body struct {
			TenantID string `json:"tenant_id"`
		}
		if f.status != http.StatusOK || json.Unmarshal(f.body, &body) != nil || body.TenantID != id {
			t.Errorf("API usage of %q: %d %.300s", id, f.status, f.body)
		}
	}
	if f := fetch(http.DefaultClient, e.URL+"/api/v1/tenants/wide/usage", nil); f.status != http.StatusOK || !json.Valid(f.body) {
		t.Errorf("API usage of the 10,000-field tenant: %d", f.status)
	}
	// The pages too, each id shown as text.
	for _, id := range []string{`quo"te`, "sp ace", "fields", "wide", strings.Repeat("b", 128)} {
		f := fetch(http.DefaultClient, e.URL+"/tenants/"+url.PathEscape(id), nil)
		if f.status != http.StatusOK || !strings.Contains(string(f.body), html.EscapeString(id)) {
			t.Errorf("page of %q: %d %.300s", id, f.status, f.body)
		}
	}
	for _, path := range []string{"/tenants", "/tenants?format=csv"} {
		if f := fetch(http.DefaultClient, e.URL+path, nil); f.status != http.StatusOK {
			t.Errorf("%s: %d %.300s", path, f.status, f.body)
		}
	}
}

// runExit runs the binary with env added, expecting it to stop by itself.
func runExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--web.listen-address=127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("still running after 20s: %s", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestEveryInvalidInputExitsWithOneLine: every invalid flag value, file and
// combination of flags stops the exporter before it serves, with a non-zero
// exit and exactly one line on standard error, naming the flag, file:line
// or value at fault. (TestInvalidStartupInputExits and
// TestPlansConfigErrorsExit hold more cases; these are the rest.)
func TestEveryInvalidInputExitsWithOneLine(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notPEM := file("not.pem", "not a certificate\n")
	ca := testserver.NewCA(t, "flags CA")
	cert := ca.Server("x")
	cases := []struct {
		name  string
		env   []string
		args  []string
		names string // what the line must contain
		bug   string // non-empty: a known bug, skipped unless asked for
	}{
		// Numbers and durations.
		{"max-requests not a number", nil, []string{"--web.max-requests=1e3"}, "--web.max-requests", ""},
		{"max-requests negative", nil, []string{"--web.max-requests=-1"}, "--web.max-requests", ""},
		{"max-requests missing", nil, []string{"--web.max-requests"}, "--web.max-requests", ""},
		{"dial timeout not a duration", nil, []string{"--redis.dial-timeout=soon"}, "--redis.dial-timeout", ""},
		{"read timeout negative", nil, []string{"--redis.read-timeout=-1s"}, "--redis.read-timeout", ""},
		{"write timeout bad unit", nil, []string{"--redis.write-timeout=5parsecs"}, "--redis.write-timeout", ""},
		{"scan count zero", nil, []string{"--redis.scan-count=0"}, "--redis.scan-count", ""},
		{"scan count not a number", nil, []string{"--redis.scan-count=ten"}, "--redis.scan-count", ""},
		{"batch size zero", nil, []string{"--redis.batch-size=0"}, "--redis.batch-size", ""},
		{"timeout offset not a duration", nil, []string{"--scrape.timeout-offset=fast"}, "--scrape.timeout-offset", ""},
		{"max timeout zero", nil, []string{"--scrape.max-timeout=0s"}, "--scrape.max-timeout", ""},
		{"max tenants negative", nil, []string{"--metrics.max-tenants=-1"}, "--metrics.max-tenants", ""},
		{"boolean flag with a value", nil, []string{"--metrics.tenant-series=maybe"}, "maybe", ""},
		{"log level", nil, []string{"--log.level=loud"}, "log level loud", ""},
		{"log format", nil, []string{"--log.format=xml"}, "log format xml", ""},
		// Addresses, names, patterns.
		{"empty redis address", nil, []string{"--redis.addr="}, "--redis.addr", ""},
		{"redis address without port", nil, []string{"--redis.addr=nohost"}, "--redis.addr", ""},
		{"redis database not a number", nil, []string{"--redis.addr=redis://127.0.0.1:6379/x"}, "--redis.addr", ""},
		{"redis URL query", nil, []string{"--redis.addr=redis://127.0.0.1:6379?db=1"}, "--redis.addr", ""},
		{"empty time zone", nil, []string{"--billing.timezone="}, "--billing.timezone", ""},
		{"key pattern without separator", nil, []string{"--usage.key-pattern={period}{tenant_id}"}, "--usage.key-pattern", ""},
		{"key pattern with unknown placeholder", nil, []string{"--usage.key-pattern=u:{tenant}:{tenant_id}:{period}"}, "--usage.key-pattern", ""},
		// Redis TLS files.
		{"missing CA file", nil, []string{"--redis.addr=rediss://127.0.0.1:6379", "--redis.tls-ca-file=" + filepath.Join(dir, "nope.pem")}, "--redis.tls", ""},
		{"CA file not PEM", nil, []string{"--redis.addr=rediss://127.0.0.1:6379", "--redis.tls-ca-file=" + notPEM}, "--redis.tls", ""},
		{"client key without certificate", nil, []string{"--redis.addr=rediss://127.0.0.1:6379", "--redis.tls-key-file=" + cert.KeyFile}, "--redis.tls", ""},
		{"client certificate not PEM", nil, []string{"--redis.addr=rediss://127.0.0.1:6379", "--redis.tls-cert-file=" + notPEM, "--redis.tls-key-file=" + notPEM}, "--redis.tls", ""},
		// Conflicting flags.
		{"TLS flags without rediss://", nil, []string{"--redis.addr=127.0.0.1:6379", "--redis.tls-ca-file=" + ca.CertFile}, "rediss://", ""},
		{"demo with a plans file", nil, []string{"--demo", "--plans.file=" + file("p.yml", plansYAML)}, "--demo", ""},
		{"DSN in the environment and a plans file", []string{"BILLING_EXPORTER_POSTGRES_DSN=postgres://x@127.0.0.1/x"},
			[]string{"--plans.file=" + file("p2.yml", plansYAML)}, "both set", ""},
		// Unreadable files (a directory: root reads any file).
		{"password file is a directory", nil, []string{"--redis.password-file=" + dir}, "--redis.password-file", ""},
		{"DSN file is a directory", nil, []string{"--postgres.dsn-file=" + dir}, "--postgres.dsn-file", ""},
		{"plans file is a directory", nil, []string{"--plans.file=" + dir}, "--plans.file", ""},
		{"config file is a directory", nil, []string{"--config.file=" + dir}, "--config.file", ""},
		{"web config is a directory", nil, []string{"--web.config.file=" + dir}, "--web.config.file", ""},
		// Bad contents.
		{"DSN with a bad port", nil, []string{"--postgres.dsn-file=" + file("dsn1", "postgres://u@127.0.0.1:notaport/db\n")}, "--postgres.dsn-file", ""},
		{"DSN not a DSN", nil, []string{"--postgres.dsn-file=" + file("dsn2", "mysql://u@127.0.0.1/db\n")}, "--postgres.dsn-file", ""},
		{"web config not YAML", nil, []string{"--web.config.file=" + file("w1.yml", "basic_auth_users: [\n")}, "--web.config.file", ""},
		{"web config certificate missing", nil, []string{"--web.config.file=" + file("w2.yml", "tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent-key.pem\n")}, "/nonexistent.pem", ""},
		{"web config certificate without key", nil, []string{"--web.config.file=" + file("w3.yml", "tls_server_config:\n  cert_file: "+cert.CertFile+"\n")}, "--web.config.file", ""},
		{"web config password not bcrypt", nil, []string{"--web.config.file=" + file("w4.yml", "basic_auth_users:\n  u: plaintext\n")}, "bcrypt", ""},
		{"config threshold negative", nil, []string{"--config.file=" + file("c1.yml", "thresholds: [-5]\n")}, "c1.yml:1", ""},
		{"config threshold not a number", nil, []string{"--config.file=" + file("c2.yml", "thresholds: [abc]\n")}, "c2.yml:1", ""},
		{"config metric type empty", nil, []string{"--config.file=" + file("c3.yml", "metric_types:\n  - {name: \"\"}\n")}, "c3.yml:2", ""},
		{"config default limit negative", nil, []string{"--config.file=" + file("c4.yml", "defaults:\n  limits: {messages: -1}\n")}, "c4.yml:2", ""},
		{"config empty plans query", nil, []string{"--config.file=" + file("c5.yml", "plans_query: \"\"\n")}, "c5.yml:1", ""},
		{"config not YAML", nil, []string{"--config.file=" + file("c6.yml", "\t bad")}, "c6.yml:1", ""},
		{"plans limit not an integer", nil, []string{"--plans.file=" + file("p3.yml", "plans:\n  - {id: 1, name: a, limits: {messages: 1.5}}\n")}, "p3.yml:2", ""},
		{"plans tenant id with a glob", nil, []string{"--plans.file=" + file("p4.yml", "tenants:\n  - {id: \"*\"}\n")}, "p4.yml:2", ""},
		{"plans duplicate plan", nil, []string{"--plans.file=" + file("p5.yml", "plans:\n  - {id: 1, name: a}\n  - {id: 1, name: b}\n")}, "p5.yml:3", ""},
		{"plans unknown plan", nil, []string{"--plans.file=" + file("p6.yml", "tenants:\n  - {id: 1, plan: 9}\n")}, "p6.yml:2", ""},
		{"plans file empty", nil, []string{"--plans.file=" + file("p7.yml", "")}, "p7.yml", ""},

		// Once bugs, now fixed: each crashed or misled before.
		{"web config unknown field", nil, []string{"--web.config.file=" + file("w5.yml", "nonsense_key: 1\n")}, "nonsense_key", ""},
		{"telemetry path without slash", nil, []string{"--web.telemetry-path=metrics"}, "--web.telemetry-path", ""},
		{"telemetry path empty", nil, []string{"--web.telemetry-path="}, "--web.telemetry-path", ""},
		{"telemetry path on the API", nil, []string{"--web.telemetry-path=/api/"}, "--web.telemetry-path", ""},
		{"telemetry path on health", nil, []string{"--web.telemetry-path=/-/healthy"}, "--web.telemetry-path", ""},
		{"empty DSN file", nil, []string{"--postgres.dsn-file=" + file("dsn-empty", "\n")}, "--postgres.dsn-file", ""},
		// Tracing environment.
		{"unknown traces exporter", []string{"OTEL_TRACES_EXPORTER=jaeger"}, nil, "OTEL_TRACES_EXPORTER", ""},
		{"unknown OTLP protocol", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"}, nil, "OTEL_EXPORTER_OTLP_PROTOCOL", ""},
		{"unknown OTLP traces protocol", []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=udp"}, nil, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				knownBug(t, tc.bug)
			}
			code, stderr := runExit(t, tc.env, tc.args...)
			if code == 0 {
				t.Fatalf("exited 0:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 {
				t.Errorf("%d lines on standard error, want one:\n%s", len(lines), stderr)
			}
			if !strings.HasPrefix(lines[0], "billing_exporter: error: ") || !strings.Contains(lines[0], tc.names) {
				t.Errorf("first line %q does not name %q", lines[0], tc.names)
			}
		})
	}

	// A listen address that cannot be listened on is found once serving
	// starts, after the start-up log lines: the last line names it.
	code, stderr := runExit(t, nil, "--web.listen-address=bogus", "--redis.addr=127.0.0.1:1")
	if last := lastLine(stderr); code == 0 || !strings.Contains(last, "bogus") || !strings.HasPrefix(last, "billing_exporter: error: ") {
		t.Errorf("bad listen address: exit %d, last line %q", code, last)
	}
}

// TestOversizedRequests: request sizes are bounded before any handler
// runs: headers past net/http's 1 MB get 431, an API URI past 4 kB gets
// 414 problem+json without echoing it, and neither touches Redis.
func TestOversizedRequests(t *testing.T) {
	r := testserver.StartRedis(t)
	e := startExporter(t, nil, "--redis.addr="+r.Addr())
	before := r.CommandCalls("hgetall") + r.CommandCalls("scan")
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/api/v1/tenants/1/usage", nil)
	req.Header.Set("X-Filler", strings.Repeat("a", 2<<20))
	if f := doFetch(http.DefaultClient, req); f.err == nil && f.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("2 MB of headers: %d", f.status)
	}
	long := strings.Repeat("9", 5000)
	f := fetch(http.DefaultClient, e.URL+"/api/v1/tenants/"+long+"/usage", nil)
	if f.status != http.StatusRequestURITooLong || f.header.Get("Content-Type") != "application/problem+json" || strings.Contains(string(f.body), long[:100]) {
		t.Errorf("5 kB URI: %d %s %.200s", f.status, f.header.Get("Content-Type"), f.body)
	}
	if after := r.CommandCalls("hgetall") + r.CommandCalls("scan"); after != before {
		t.Errorf("oversized requests reached Redis (%d commands)", after-before)
	}
}

// TestOversizedValueKeepsMemoryBounded writes one 64 MiB field value (the
// hostile-data case of a 200 MB value, scaled down to keep the test quick)
// and checks, on the real binary, that a scrape and an API read of it leave
// the process's peak RSS (VmHWM) near where it was: the reply is dropped as
// it streams in, skipped and counted, never held, and the tenant's usage
// is unavailable rather than 0. Unbounded, the same reads
// raised the peak by several times the value.
func TestOversizedValueKeepsMemoryBounded(t *testing.T) {
	const valueBytes = 64 << 20
	srv := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC)
	srv.Do("HSET", "usage:blob:"+cur.ID, "storage", strings.Repeat("9", valueBytes))
	srv.HSet("usage:42:"+cur.ID, "messages", 5)
	e := startExporter(t, nil, "--redis.addr="+srv.Addr(), "--redis.read-timeout=30s", "--scrape.max-timeout=30s")
	idle := peakRSS(t, e.cmd.Process.Pid)

	r := scrapetest.Get(t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "30"})
	if got := r.MustValue(t, "billing_redis_up"); got != 1 {
		t.Fatalf("billing_redis_up = %v", got)
	}
	if got := r.MustValue(t, "billing_exporter_invalid_data_items", "source", "redis", "reason", "oversized_hash"); got != 1 {
		t.Errorf("oversized_hash = %v, want 1", got)
	}
	if got := r.MustValue(t, "billing_usage", "tenant_id", "42", "metric_type", "messages"); got != 5 {
		t.Errorf("tenant 42's messages = %v, want 5", got)
	}
	// The API: the tenant is known, its usage unavailable (not 0).
	resp, err := http.Get(e.URL + "/api/v1/tenants/blob/usage")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"reason":"oversized_hash"`) {
		t.Errorf("API for the oversized tenant: %d %s, want 200 with its usage unavailable (oversized_hash)", resp.StatusCode, body)
	}
	peak := peakRSS(t, e.cmd.Process.Pid)
	t.Logf("VmHWM: %d MiB idle, %d MiB after a scrape and an API read of a %d MiB value", idle>>20, peak>>20, valueBytes>>20)
	if peak-idle > valueBytes/2 {
		t.Errorf("peak RSS grew by %d MiB reading a %d MiB value it skips", (peak-idle)>>20, valueBytes>>20)
	}
}

// peakRSS returns a process's peak resident set size (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
