package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestMaxMetricTypesBoundsSeries reproduces the cardinality attack on a
// real Redis (tenants with a field of their own each, one hash of 2,000
// fields) and checks that --usage.max-metric-types with
// --metrics.max-tenants bounds the per-tenant series, keeps the configured
// types, counts the fields left out, and that the API agrees.
func TestMaxMetricTypesBoundsSeries(t *testing.T) {
	srv := testserver.StartRedis(t)
	c := srv.Conn()
	defer c.Close()
	for i := range 300 {
		c.Send("HSET", fmt.Sprintf("usage:%d:202611", i), "messages", i, "storage", 1, fmt.Sprintf("unique%d", i), 1, "apiCalls", 2)
	}
	wide := redis.Args{"usage:wide:202611", "messages", 1}
	for i := range 2000 {
		wide = wide.Add(fmt.Sprintf("f%04d", i), i)
	}
	c.Send("HSET", wide...)
	if _, err := c.Do(""); err != nil {
		t.Fatal(err)
	}

	target, err := conn.ParseTarget(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	store, err := read.New(target)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const maxTypes, maxTenants = 6, 10
	svc := billing.New(store, billing.WithClock(func() time.Time { return november }), billing.WithMaxMetricTypes(maxTypes))
	server := httptest.NewServer(NewHandler(svc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler),
		WithMaxTenants(maxTenants)))
	defer server.Close()

	r := scrapetest.Get(t, nil, server.URL, nil)
	types := r.LabelValues("billing_usage", "metric_type")
	// The four configured types, then apiCalls (300 tenants), then the
	// first by name of the types one tenant each has.
	allowed := map[string]bool{"messages": true, "storage": true, "users": true, "whatsappSessions": true, "apiCalls": true, "f0000": true}
	if len(types) > maxTypes {
		t.Errorf("metric types %v, more than %d", types, maxTypes)
	}
	for _, mt := range types {
		if !allowed[mt] {
			t.Errorf("metric type %s exported; the cap keeps only %v", mt, allowed)
		}
	}
	if n := len(r.Samples("billing_usage")); n > maxTenants*maxTypes {
		t.Errorf("%d billing_usage series, more than %d tenants × %d types", n, maxTenants, maxTypes)
	}
	// Fields dropped: 300 unique ones and 2,000 of the wide hash but the kept f0000.
	if got := r.MustValue(t, "billing_exporter_invalid_data_items", "source", "redis", "reason", "metric_type_limit"); got != 300+1999 {
		t.Errorf("metric_type_limit = %v, want %d", got, 300+1999)
	}
	for _, id := range []string{"7", "wide"} {
		tr, err := svc.Tenant(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for mt := range tr.Status.Usage.Map() {
			if !allowed[mt] {
				t.Errorf("API: tenant %s has metric type %s, which /metrics left out", id, mt)
			}
		}
	}
}
