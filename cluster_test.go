package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// clusterCompared are the families that must not depend on whether the
// usage state sits on one Redis or is sharded over a cluster.
var clusterCompared = []string{
	"billing_usage", "billing_usage_limit", "billing_usage_percentage",
	"billing_tenant_using_defaults", "billing_tenant_plan_info",
	"billing_redis_usage_keys", "billing_exporter_invalid_data_items",
	"billing_tenants_per_plan", "billing_tenants_over_threshold", "billing_redis_up",
}

// clusterSamples renders the samples of the named families as sorted lines.
func clusterSamples(r *scrapetest.Result, names ...string) []string {
	var out []string
	for _, name := range names {
		for _, m := range r.Samples(name) {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
			}
			slices.Sort(labels)
			out = append(out, fmt.Sprintf("%s{%s} %v", name, strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	slices.Sort(out)
	return out
}

func diffSamples(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok && len(missing) < 10 {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok && len(extra) < 10 {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: %d samples, want %d; missing %v; extra %v", what, len(got), len(want), missing, extra)
}

// TestRedisClusterEndToEnd runs the binary against a real 3-master Redis
// Cluster (--redis.cluster, two seeds) and against one Redis holding the
// same keys: the exported usage, limits and percentages are identical; the
// cluster adds per-node series; a stopped master makes the scrape report
// Redis down without per-tenant numbers, and its return is picked up.
func TestRedisClusterEndToEnd(t *testing.T) {
	cl := testserver.StartCluster(t, 3)
	single := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC)
	conn := single.Conn()
	send := func(cmd string, args ...any) {
		cl.Do(cmd, args...)
		if err := conn.Send(cmd, args...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3000 {
		send("HSET", "usage:"+strconv.Itoa(i)+":"+cur.ID, "messages", i*11, "storage", i*512, "users", i%7, "whatsappSessions", i%3)
		if i%50 == 0 {
			send("HSET", "usage:"+strconv.Itoa(i)+":"+cur.Previous().ID, "messages", 5)
		}
	}
	send("HSET", "usage:bad:"+cur.ID, "messages", "1.5", "users", 1)
	send("SET", "usage:wt:"+cur.ID, "x")
	if _, err := conn.Do(""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if cl.KeyCount(i) == 0 {
			t.Fatalf("cluster node %d holds no key", i)
		}
	}

	var plansYAML strings.Builder
	plansYAML.WriteString("plans:\n  - {id: 1, name: pro, limits: {messages: 40000, users: 10}}\n")
	plansYAML.WriteString("defaults:\n  limits: {messages: 5000, storage: 1000000, users: 3, whatsappSessions: 1}\n")
	plansYAML.WriteString("tenants:\n")
	for i := 0; i < 3000; i += 2 {
		fmt.Fprintf(&plansYAML, "  - {id: %q, plan: 1}\n", strconv.Itoa(i))
	}
	plansFile := writeFile(t, "plans.yml", plansYAML.String())

	ref := startExporter(t, nil, "--redis.addr="+single.Addr(), "--plans.file="+plansFile).scrape()
	want := clusterSamples(ref, clusterCompared...)
	if n := len(ref.Samples("billing_usage_percentage")); n < 3000 {
		t.Fatalf("reference scrape has %d percentage series", n)
	}

	addrs := cl.Addrs()
	e := startExporter(t, nil, "--redis.cluster", "--redis.addr="+addrs[0], "--redis.addr="+addrs[1],
		"--plans.file="+plansFile, "--redis.dial-timeout=500ms", "--redis.read-timeout=2s")
	r := e.scrape()
	diffSamples(t, "cluster", clusterSamples(r, clusterCompared...), want)
	var memSum float64
	for _, addr := range addrs {
		if got := r.MustValue(t, "billing_redis_node_up", "node", addr); got != 1 {
			t.Errorf("billing_redis_node_up{node=%q} = %v", addr, got)
		}
		memSum += r.MustValue(t, "billing_redis_node_memory_bytes", "node", addr)
		r.MustValue(t, "billing_redis_node_connections_active", "node", addr)
	}
	if got := r.MustValue(t, "billing_redis_memory_bytes"); got != memSum {
		t.Errorf("billing_redis_memory_bytes = %v, want the masters' sum %v", got, memSum)
	}
	for _, op := range []string{"scan", "hgetall", "info"} {
		if s := r.Samples("billing_redis_operation_duration_seconds", "operation", op); len(s) != 1 || s[0].GetHistogram().GetSampleCount() == 0 {
			t.Errorf("no observation of Redis operation %q in cluster mode", op)
		}
	}
	scrapetest.PromtoolCheck(t, r.Body)

	// A master that is not a seed goes down.
	cl.StopNode(2)
	start := time.Now()
	r = scrapetest.Get(t, nil, e.URL+"/metrics", map[string]string{"X-Prometheus-Scrape-Timeout-Seconds": "3"})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("scrape took %v with a master down, past its 3s budget", d)
	}
	if r.Status != 200 {
		t.Fatalf("status %d with a master down", r.Status)
	}
	if got := r.MustValue(t, "billing_redis_up"); got != 0 {
		t.Errorf("billing_redis_up = %v with a master down", got)
	}
	if got := r.MustValue(t, "billing_redis_node_up", "node", addrs[2]); got != 0 {
		t.Errorf("billing_redis_node_up of the stopped master = %v", got)
	}
	for _, name := range []string{"billing_usage", "billing_usage_percentage", "billing_redis_usage_keys"} {
		if _, ok := r.Families[name]; ok {
			t.Errorf("%s exported with a master down", name)
		}
	}

	cl.StartNode(2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = e.scrape()
		if v, _ := r.Value("billing_redis_up"); v == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	diffSamples(t, "cluster after the master came back", clusterSamples(r, clusterCompared...), want)
}

// TestRedisAddrRepeatedNeedsCluster: several --redis.addr without
// --redis.cluster is a mistake, reported at start.
func TestRedisAddrRepeatedNeedsCluster(t *testing.T) {
	code, stderr := runToExit(t, "--redis.addr=127.0.0.1:7000", "--redis.addr=127.0.0.1:7001")
	if code == 0 {
		t.Fatal("exited 0")
	}
	if last := lastLine(stderr); !strings.Contains(last, "--redis.cluster") {
		t.Errorf("last line %q does not mention --redis.cluster", last)
	}
}
