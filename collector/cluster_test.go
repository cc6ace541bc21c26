package collector

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// clusterPlans puts tenants 0-999 on a plan and leaves the rest on the
// defaults, so that limits and percentages are exported for every tenant.
func clusterPlans(t *testing.T) *plans.FileSource {
	t.Helper()
	var b strings.Builder
	b.WriteString("plans:\n  - {id: 1, name: pro, limits: {messages: 50000, users: 20}}\n")
	b.WriteString("defaults:\n  limits: {messages: 10000, storage: 1000000, users: 5, whatsappSessions: 2}\n")
	b.WriteString("tenants:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "  - {id: %q, plan: 1}\n", strconv.Itoa(i))
	}
	src, err := plans.ParseFile([]byte(b.String()), "plans.yml")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// handlerOver serves /metrics over a usage reader, as main wires it.
func handlerOver(t *testing.T, r billing.Store, src *plans.FileSource) *httptest.Server {
	t.Helper()
	defaults, _ := src.Defaults()
	svc := billing.New(r, billing.WithClock(func() time.Time { return november }),
		billing.WithConfig(billing.Config{Plans: src, PlansName: "file", Defaults: defaults}))
	srv := httptest.NewServer(NewHandler(svc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv
}

// samples renders the samples of the named families as sorted lines.
func samples(r *scrapetest.Result, names ...string) []string {
	var out []string
	for _, name := range names {
		for _, m := range r.Samples(name) {
			out = append(out, name+labelString(m)+" "+strconv.FormatFloat(m.GetGauge().GetValue(), 'g', -1, 64))
		}
	}
	slices.Sort(out)
	return out
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, lp := range m.GetLabel() {
		parts = append(parts, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// comparedFamilies must be identical whether the same keys sit on one
// server or across a cluster.
var comparedFamilies = []string{
	"billing_usage", "billing_usage_limit", "billing_usage_percentage",
	"billing_tenant_using_defaults", "billing_tenant_plan_info",
	"billing_redis_usage_keys", "billing_exporter_invalid_data_items",
	"billing_tenants_per_plan", "billing_tenants_over_threshold", "billing_redis_up",
}

func sameSamples(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: %d samples, want %d; missing (first 10) %v; extra (first 10) %v",
		what, len(got), len(want), missing[:min(10, len(missing))], extra[:min(10, len(extra))])
}

func TestClusterMetricsMatchSingleServer(t *testing.T) {
	cl := testserver.StartCluster(t, 3)
	single := testserver.StartRedis(t)
	sc := single.Conn()
	for i := range 3000 {
		key := "usage:" + strconv.Itoa(i) + ":202611"
		args := []any{key, "messages", i * 13, "storage", i * 400, "users", i % 9, "whatsappSessions", i % 4}
		cl.Do("HSET", args...)
		if err := sc.Send("HSET", args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range [][]any{
		{"HSET", "usage:7:202610", "messages", 3},
		{"HSET", "usage:bad:202611", "messages", "-1", "users", 1},
		{"SET", "usage:wt:202611", "x"},
		{"HSET", "usage:x:bogus", "messages", 1},
	} {
		cl.Do(cmd[0].(string), cmd[1:]...)
		if err := sc.Send(cmd[0].(string), cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Do(""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if cl.KeyCount(i) == 0 {
			t.Fatalf("node %d holds no key", i)
		}
	}

	target, _ := conn.ParseTarget(single.Addr())
	store, err := read.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var seeds []conn.Target
	for _, a := range cl.Addrs()[:2] {
		tg, _ := conn.ParseTarget(a)
		seeds = append(seeds, tg)
	}
	cluster, err := read.NewCluster(seeds, conn.WithTimeouts(500*time.Millisecond, time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Close() })

	src := clusterPlans(t)
	singleSrv := handlerOver(t, store, src)
	clusterSrv := handlerOver(t, cluster, src)

	ref := scrapetest.Get(t, nil, singleSrv.URL, nil)
	want := samples(ref, comparedFamilies...)
	if n := len(ref.Samples("billing_usage_percentage")); n < 3000 {
		t.Fatalf("reference scrape has %d percentage series", n)
	}
	if _, ok := ref.Families["billing_redis_node_up"]; ok {
		t.Error("single-server scrape has per-node series")
	}

	r := scrapetest.Get(t, nil, clusterSrv.URL, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	sameSamples(t, "cluster scrape", samples(r, comparedFamilies...), want)
	scrapetest.PromtoolCheck(t, r.Body)

	// Per node: one series per master; the cluster-wide gauges are their sums.
	var memSum, connSum float64
	for _, addr := range cl.Addrs() {
		if up := r.MustValue(t, "billing_redis_node_up", "node", addr); up != 1 {
			t.Errorf("node_up{%s} = %v", addr, up)
		}
		mem := r.MustValue(t, "billing_redis_node_memory_bytes", "node", addr)
		if mem <= 0 {
			t.Errorf("node_memory_bytes{%s} = %v", addr, mem)
		}
		memSum += mem
		connSum += r.MustValue(t, "billing_redis_node_connections_active", "node", addr)
	}
	if got := r.MustValue(t, "billing_redis_memory_bytes"); got != memSum {
		t.Errorf("billing_redis_memory_bytes = %v, want the nodes' sum %v", got, memSum)
	}
	if got := r.MustValue(t, "billing_redis_connections_active"); got != connSum {
		t.Errorf("billing_redis_connections_active = %v, want the nodes' sum %v", got, connSum)
	}

	// One master down: the scrape answers within its deadline, Redis down,
	// that node down, and no per-tenant usage at all.
	down := cl.Addrs()[2] // not a seed
	cl.StopNode(2)
	start := time.Now()
	r = scrapetest.Get(t, nil, clusterSrv.URL, map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "3"})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("scrape with a master down took %v, past its 3s budget", d)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("status %d with a master down", r.Status)
	}
	if got := r.MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v with a master down", got)
	}
	for _, addr := range cl.Addrs() {
		want := 1.0
		if addr == down {
			want = 0
		}
		if got := r.MustValue(t, "billing_redis_node_up", "node", addr); got != want {
			t.Errorf("node_up{%s} = %v, want %v", addr, got, want)
		}
	}
	for _, name := range []string{"billing_usage", "billing_usage_percentage", "billing_redis_usage_keys", "billing_redis_memory_bytes"} {
		if _, ok := r.Families[name]; ok {
			t.Errorf("%s exported with a master down", name)
		}
	}
	if _, ok := r.Value("billing_redis_node_memory_bytes", "node", down); ok {
		t.Error("memory of the stopped node exported")
	}
	scrapetest.PromtoolCheck(t, r.Body)

	// Back: the same exporter recovers, with the same numbers.
	cl.StartNode(2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = scrapetest.Get(t, nil, clusterSrv.URL, nil)
		if v, _ := r.Value("billing_redis_up"); v == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := r.MustValue(t, "billing_redis_up"); got != 1 {
		t.Fatalf("billing_redis_up = %v 20s after the master came back", got)
	}
	sameSamples(t, "after restart", samples(r, comparedFamilies...), want)
	if got := r.MustValue(t, "billing_redis_node_up", "node", down); got != 1 {
		t.Errorf("node_up{%s} = %v after restart", down, got)
	}
}
