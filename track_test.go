package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestTrackModeSeriesForSeries runs one exporter in track mode and one in
// scan mode on the same Redis while a writer changes it in every way a
// backend can, with scrapes of the track exporter all along. At each
// checkpoint (the writer paused) both exporters' outputs are the same,
// series for series: uncapped on default limits, and capped with plans
// that change between checkpoints, by a reload or a background refresh.
func TestTrackModeSeriesForSeries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		plans bool
		args  []string
	}{
		{name: "defaults"},
		{name: "capped with plans", plans: true, args: []string{"--metrics.max-tenants=15", "--plans.refresh-interval=100ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seriesForSeries(t, tc.plans, tc.args...)
		})
	}
}

// trackPlans returns SQL that sets the reference schema's two plans and
// assigns the first tenants to them, by rng.
func trackPlans(rng *rand.Rand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "DELETE FROM tenants; DELETE FROM plans; INSERT INTO plans VALUES (1, 'starter', %d, 5000, 5, NULL), (2, 'pro', %d, NULL, NULL, 3);",
		200+rng.IntN(800), 1000+rng.IntN(4000))
	for i := range 60 {
		if p := rng.IntN(3); p > 0 {
			fmt.Fprintf(&b, " INSERT INTO tenants VALUES (%d, NULL, %d);", i, p)
		}
	}
	return b.String()
}

func seriesForSeries(t *testing.T, withPlans bool, args ...string) {
	srv := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC).ID
	prev := period.At(time.Now(), time.UTC).Previous().ID
	rng := rand.New(rand.NewPCG(11, 13))
	var env []string
	source := "--config.file=" + writeFile(t, "config.yml", defaultsYAML)
	var pg *testserver.Postgres
	if withPlans {
		pg = testserver.StartPostgres(t)
		testserver.LoadSchema(t, pg, "examples/schema.sql")
		pg.Exec(trackPlans(rng))
		env = []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()}
	}
	track := startExporter(t, env, append(args, "--redis.addr="+srv.Addr(), source, "--redis.resync-interval=0")...)
	scan := startExporter(t, env, append(args, "--redis.addr="+srv.Addr(), source, "--redis.read-mode=scan")...)

	c := srv.Conn()
	defer c.Close()
	key := func() string {
		p := cur
		if rng.IntN(5) == 0 {
			p = prev
		}
		return fmt.Sprintf("usage:%d:%s", rng.IntN(80), p)
	}
	step := func() {
		k := key()
		var err error
		switch op := rng.IntN(20); {
		case op < 8:
			_, err = c.Do("HINCRBY", k, []string{"messages", "storage", "users", "whatsappSessions"}[rng.IntN(4)], rng.IntN(400))
		case op < 10:
			_, err = c.Do("HSET", k, "apiCalls", rng.IntN(9), "bad value", "x")
		case op < 12:
			_, err = c.Do("HDEL", k, "messages")
		case op < 13:
			_, err = c.Do("DEL", k)
		case op < 14:
			_, err = c.Do("PEXPIRE", k, 5+rng.IntN(20))
		case op < 15:
			if _, err = c.Do("RENAME", k, key()); err != nil && strings.Contains(err.Error(), "no such key") {
				err = nil
			}
		case op < 16:
			_, err = c.Do("SET", k, "wrong type")
		case op < 17:
			_, err = c.Do("HSET", "usage:no-period:x", "messages", 1) // malformed
		case op < 18:
			_, err = c.Do("HSET", "other:"+k, "messages", 1)
		default:
			_, err = c.Do("HSET", fmt.Sprintf("usage:n%d:%s", rng.IntN(500), cur), "messages", rng.IntN(2000))
		}
		if err != nil && !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Fatal(err)
		}
	}
	// settle deletes keys past their TTL (a SCAN does), so that both
	// exporters see the same keyspace.
	settle := func() {
		time.Sleep(30 * time.Millisecond)
		for cursor := "0"; ; {
			reply, err := redis.Values(c.Do("SCAN", cursor, "COUNT", 1000))
			if err != nil {
				t.Fatal(err)
			}
			if cursor, _ = redis.String(reply[0], nil); cursor == "0" {
				return
			}
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			f := fetch(clientWithTimeout(10*time.Second), track.URL+"/metrics", nil)
			if f.err != nil {
				t.Error(f.err)
				return
			}
		}
	})
	for cp := range 4 {
		for range 400 {
			step()
		}
		if withPlans && cp > 0 {
			written := time.Now()
			pg.Exec(trackPlans(rng))
			for _, e := range []*exporter{track, scan} {
				if cp%2 == 1 {
					if status, body := e.reloadWith("http"); status != http.StatusOK {
						t.Fatalf("reload: %d %s", status, body)
					}
					continue
				}
				refreshedSince(t, e, written)
			}
		}
		settle()
		got, want := scrapeBy(t, track, 5*time.Second), scrapeBy(t, scan, 5*time.Second)
		diffSamples(t, fmt.Sprintf("checkpoint %d", cp), clusterSamples(got, clusterCompared...), clusterSamples(want, clusterCompared...))
		if v := got.MustValue(t, "billing_redis_read_mode", "mode", "track"); v != 1 {
			t.Fatalf("track exporter: billing_redis_read_mode{mode=\"track\"} = %v", v)
		}
		if cp == 3 {
			if n := got.MustValue(t, "billing_redis_full_reads_total", "reason", "start"); n != 1 {
				t.Errorf("full reads at start = %v, want 1", n)
			}
			if n := got.MustValue(t, "billing_redis_mirror_reread_keys_total"); n == 0 {
				t.Error("no key re-read: the mirror was not updated incrementally")
			}
		}
	}
	close(stop)
	wg.Wait()
}

func clientWithTimeout(d time.Duration) *http.Client { return &http.Client{Timeout: d} }

// refreshedSince waits until e has read its plans after written.
func refreshedSince(t *testing.T, e *exporter, written time.Time) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		before := time.Now()
		if age := e.scrape().MustValue(t, "billing_plans_age_seconds"); age < before.Sub(written).Seconds() {
			return
		}
	}
	t.Fatal("no plans refresh seen within 10s")
}
