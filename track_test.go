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
// series for series.
func TestTrackModeSeriesForSeries(t *testing.T) {
	srv := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC).ID
	prev := period.At(time.Now(), time.UTC).Previous().ID
	cfg := writeFile(t, "config.yml", defaultsYAML)
	track := startExporter(t, nil, "--redis.addr="+srv.Addr(), "--config.file="+cfg, "--redis.resync-interval=0")
	scan := startExporter(t, nil, "--redis.addr="+srv.Addr(), "--config.file="+cfg, "--redis.read-mode=scan")

	c := srv.Conn()
	defer c.Close()
	rng := rand.New(rand.NewPCG(11, 13))
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
