package api

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestScrapeAndListShareOneRead: a scrape and a tenant-list request issued
// together cost Redis one full read (the billing core's shared read), in
// either order, and both answer from it. The core's max age is 0, so the
// second caller can only have joined the read in flight, never reused a
// completed one.
func TestScrapeAndListShareOneRead(t *testing.T) {
	redisSrv := testserver.StartRedis(t)
	e := newEnvOnRedis(t, redisSrv, envConfig{
		svcOpts:   []billing.Option{billing.WithMaxAge(0)},
		storeOpts: []conn.Option{conn.WithScanCount(50), conn.WithBatchSize(50)},
	})
	const tenants = 500
	for i := range tenants {
		e.redis.HSet(fmt.Sprintf("usage:%d:202611", i), "messages", i)
	}

	// One scrape alone: how many SCAN calls a full read takes (several,
	// with COUNT 50; measured rather than assumed).
	before := e.redis.CommandCalls("scan")
	if r := scrapetest.Get(t, nil, e.server.URL+"/metrics", nil); r.Status != http.StatusOK {
		t.Fatalf("scrape: %d", r.Status)
	}
	solo := e.redis.CommandCalls("scan") - before
	if solo < 2 {
		t.Fatalf("a full read made %d SCAN calls; the test wants several", solo)
	}

	for _, order := range []string{"list first", "scrape first"} {
		t.Run(order, func(t *testing.T) {
			before := e.redis.CommandCalls("scan")
			var wg sync.WaitGroup
			var scrape *scrapetest.Result
			var list *response
			scrapeNow := func() {
				defer wg.Done()
				scrape = scrapetest.Get(t, nil, e.server.URL+"/metrics", nil)
			}
			listNow := func() {
				defer wg.Done()
				list = do(t, e.client, http.MethodGet, e.server.URL+"/api/v1/tenants?limit=500")
			}
			first, second := listNow, scrapeNow
			if order == "scrape first" {
				first, second = scrapeNow, listNow
			}
			// Freeze Redis, then send both while it sleeps: the first starts
			// a read that waits on Redis, the second must join it.
			sleeper := e.redis.Conn()
			defer sleeper.Close()
			go func() { _, _ = sleeper.Do("DEBUG", "SLEEP", "1") }()
			waitFrozen(t, e.redis)
			wg.Add(2)
			go first()
			time.Sleep(50 * time.Millisecond)
			go second()
			wg.Wait()

			if scrape.Status != http.StatusOK {
				t.Fatalf("scrape: %d", scrape.Status)
			}
			list.wantStatus(t, http.StatusOK)
			var l listJSON
			list.decode(t, &l)
			if got := e.redis.CommandCalls("scan") - before; got != solo {
				t.Errorf("a scrape and a list request together ran %d SCAN calls; one read takes %d", got, solo)
			}
			// Both are views of the same read.
			if l.Total != tenants {
				t.Errorf("list total %d, want %d", l.Total, tenants)
			}
			for _, item := range l.Tenants {
				v, ok := scrape.Value("billing_usage", "tenant_id", item.TenantID, "metric_type", "messages")
				if !ok || item.Used == nil || int64(v) != *item.Used {
					t.Errorf("tenant %s: list used %v, scrape %v (present %v)", item.TenantID, item.Used, v, ok)
				}
			}
		})
	}
}

// waitFrozen waits until r leaves a PING unanswered for 50 ms (it is busy
// with DEBUG SLEEP).
func waitFrozen(t *testing.T, r *testserver.Redis) {
	t.Helper()
	for range 200 {
		c, err := redis.Dial("tcp", r.Addr(), redis.DialReadTimeout(50*time.Millisecond))
		if err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err != nil {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("Redis never froze under DEBUG SLEEP")
}
