package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// waitFor scrapes until family (no labels) reads want, for up to 10 s: a
// connection cut under the pool may cost the scrape that finds it.
func waitFor(t *testing.T, e *exporter, family string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.scrape().MustValue(t, family)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after 10s, want %v", family, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisPasswordRotates: the password file is read when a connection is
// dialled. Redis changes the exporter's password and cuts its connections:
// while the file holds the old password the scrape says Redis is down
// (WRONGPASS), and once the file holds the new one the next scrape reads
// again, with no restart and no reload.
func TestRedisPasswordRotates(t *testing.T) {
	redis := testserver.StartRedis(t)
	key := "usage:1:" + period.At(time.Now(), time.UTC).ID
	redis.HSet(key, "messages", 42)
	redis.Do("ACL", "SETUSER", "exporter", "on", ">old-pw-1f3a", "~*", "&__redis__:invalidate", "+@all")
	passFile := writeFile(t, "redis-password", "old-pw-1f3a\n")
	e := startExporter(t, nil, "--redis.addr=redis://exporter@"+redis.Addr(), "--redis.password-file="+passFile)
	waitFor(t, e, "billing_redis_up", 1)
	if got := e.scrape().MustValue(t, "billing_redis_tracking_unavailable"); got != 0 {
		t.Fatalf("key tracking unavailable before the rotation:\n%s", e.Output())
	}

	redis.Do("ACL", "SETUSER", "exporter", "resetpass", ">new-pw-9c2e")
	redis.Do("CLIENT", "KILL", "USER", "exporter")
	waitFor(t, e, "billing_redis_up", 0)
	if !strings.Contains(e.Output(), "WRONGPASS") {
		t.Errorf("the log does not say why Redis is down:\n%s", e.Output())
	}

	writeTo(t, passFile, "new-pw-9c2e\n")
	waitFor(t, e, "billing_redis_up", 1)
	if got := e.scrape().MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 42 {
		t.Errorf("messages = %v after the rotation", got)
	}
	// The mirror's key-tracking connections were cut too and dial with the
	// new password, as every connection does: writes after the rotation
	// reach the exporter as invalidations, their keys re-read alone.
	before := e.scrape().MustValue(t, "billing_redis_mirror_reread_keys_total")
	deadline := time.Now().Add(10 * time.Second)
	for {
		redis.Do("HINCRBY", key, "messages", 1)
		r := e.scrape()
		if r.MustValue(t, "billing_redis_mirror_reread_keys_total") > before {
			if r.MustValue(t, "billing_redis_tracking_unavailable") != 0 {
				t.Error("key tracking unavailable after the rotation")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no key re-read through tracking within 10s of the rotation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pw := range []string{"old-pw-1f3a", "new-pw-9c2e"} {
		if strings.Contains(e.Output(), pw) {
			t.Errorf("a password appears in the log")
		}
	}
}

// TestPostgresDSNRotates: the DSN file is read when the pool opens a
// connection. The database refuses the old role and its sessions end; the
// file is rewritten with another role, and the plans are read again
// without a restart.
func TestPostgresDSNRotates(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(plansSQL)
	pg.Exec(`CREATE ROLE plans_a LOGIN; CREATE ROLE plans_b LOGIN;
GRANT SELECT ON plans, tenants TO plans_a, plans_b;`)
	role := func(r string) string { return strings.Replace(pg.DSN(), "postgres@", r+"@", 1) + "\n" }
	dsnFile := writeFile(t, "dsn", role("plans_a"))
	e := startExporter(t, nil, "--redis.addr="+redis.Addr(), "--postgres.dsn-file="+dsnFile,
		"--config.file="+writeFile(t, "config.yml", defaultsYAML), "--plans.refresh-interval=100ms")
	waitFor(t, e, "billing_postgres_up", 1)

	pg.Exec(`ALTER ROLE plans_a NOLOGIN;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'plans_a';`)
	waitFor(t, e, "billing_postgres_up", 0)

	writeTo(t, dsnFile, role("plans_b"))
	waitFor(t, e, "billing_postgres_up", 1)
	checkJoined(t, e.scrape())
}

// TestRedisTLSClientCertificateRotates: the client certificate is read at
// each TLS handshake. Replaced on disk by one the server does not trust,
// the next connection is refused; replaced by a good one, the next
// connection reads again. No restart, no reload.
func TestRedisTLSClientCertificateRotates(t *testing.T) {
	ca := testserver.NewCA(t, "redis CA")
	r := testserver.StartRedisTLS(t, ca, true)
	r.Do("HSET", "usage:1:"+period.At(time.Now(), time.UTC).ID, "messages", 7)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	install := func(kp testserver.KeyPair) {
		t.Helper()
		writeTo(t, certFile, readFile(t, kp.CertFile))
		writeTo(t, keyFile, readFile(t, kp.KeyFile))
		// Cut the pooled connections: only new ones handshake.
		r.Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
	}
	install(ca.Client("exporter-1"))
	e := startExporter(t, nil, "--redis.addr="+r.URL(), "--redis.tls-ca-file="+ca.CertFile,
		"--redis.tls-cert-file="+certFile, "--redis.tls-key-file="+keyFile)
	waitFor(t, e, "billing_redis_up", 1)

	install(testserver.NewCA(t, "another CA").Client("stranger"))
	waitFor(t, e, "billing_redis_up", 0)

	install(ca.Client("exporter-2"))
	waitFor(t, e, "billing_redis_up", 1)
	if got := e.scrape().MustValue(t, "billing_usage", "tenant_id", "1", "metric_type", "messages"); got != 7 {
		t.Errorf("messages = %v after the rotation", got)
	}
}
