package demo_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/collector"
	"github.com/billing-exporter/billing_exporter/internal/api"
	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/demo"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestFirstScrapeShowsEveryState starts the demo as --demo does (embedded
// plans, their defaults) and scrapes it once, through /metrics and the API
// as served: already the first scrape has a tenant in every state. The
// clock is fixed at points of the month that matter to the projection: the
// day after the 24 h it needs, mid-month, and the last hour.
func TestFirstScrapeShowsEveryState(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC),
	} {
		t.Run(at.Format(time.DateTime), func(t *testing.T) {
			url := startDemo(t, func() time.Time { return at })
			checkStates(t, url)
		})
	}
}

// startDemo serves the demo's /metrics and API on one mux, as main does.
func startDemo(t *testing.T, now func() time.Time) string {
	t.Helper()
	file, err := demo.Plans()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := file.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defaults, _ := file.Defaults()
	pattern := usage.MustParseKeyPattern(usage.DefaultKeyPattern)
	logger := slog.New(slog.DiscardHandler)
	d, err := demo.StartAt(now, cat, defaults, pattern, time.UTC, time.Second, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	store, err := read.New(conn.Target{Address: d.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	service := billing.New(store, billing.WithConfig(billing.Config{Plans: file, PlansName: "file", Defaults: defaults}),
		billing.WithClock(now), billing.WithKeyPattern(pattern))
	mux := http.NewServeMux()
	mux.Handle("/metrics", collector.NewHandler(service, prometheus.NewRegistry(), logger))
	mux.Handle("/api/", api.New(service))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func checkStates(t *testing.T, url string) {
	t.Helper()
	m := scrapetest.Get(t, nil, url+"/metrics", nil)
	value := func(name string, labels ...string) (float64, bool) { return m.Value(name, labels...) }
	tenants := m.LabelValues("billing_tenant_plan_info", "tenant_id")

	found := map[demo.State][]string{}
	for _, id := range tenants {
		add := func(s demo.State) { found[s] = append(found[s], id) }
		pct, hasPct := value("billing_usage_percentage", "tenant_id", id, "limit_type", "messages")
		_, hasLimit := value("billing_usage_limit", "tenant_id", id, "limit_type", "messages")
		_, hasUsage := value("billing_usage", "tenant_id", id, "metric_type", "messages")
		switch {
		case hasPct && pct >= 80 && pct < 100:
			add(demo.NearLimit)
		case hasPct && pct > 100:
			add(demo.OverLimit)
		case hasUsage && !hasLimit:
			add(demo.Unlimited)
		case hasLimit && !hasPct:
			add(demo.SkippedField)
		}
		for lt, s := range map[string]demo.State{"users": demo.UsersAtLimit, "whatsappSessions": demo.SessionsAtLimit} {
			used, ok1 := value("billing_usage", "tenant_id", id, "metric_type", lt)
			limit, ok2 := value("billing_usage_limit", "tenant_id", id, "limit_type", lt)
			if ok1 && ok2 && used == limit {
				add(s)
			}
		}
		if v, _ := value("billing_tenant_using_defaults", "tenant_id", id); v == 1 {
			add(demo.Defaults)
		}
		if len(m.Samples("billing_usage", "tenant_id", id)) == 0 {
			add(demo.PlansOnly)
		}
	}
	if n := len(m.Samples("billing_tenants_over_threshold", "limit_type", "messages", "threshold", "80")); n != 1 {
		t.Errorf("%d billing_tenants_over_threshold series for messages at 80", n)
	} else if v, _ := value("billing_tenants_over_threshold", "limit_type", "messages", "threshold", "80"); v < 2 {
		t.Errorf("billing_tenants_over_threshold{messages,80} = %v, want the near and over tenants at least", v)
	}
	if v, _ := value("billing_exporter_invalid_data_items", "source", "redis", "reason", "invalid_value"); v < 1 {
		t.Errorf("no skipped field counted (%v)", v)
	}

	// On course: under the limit now, projected past it (the API's
	// projection, as the list of tenants gives it).
	resp, err := http.Get(url + "/api/v1/tenants?limit_type=messages&min_percentage=0&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Tenants []struct {
			TenantID            string   `json:"tenant_id"`
			Percentage          float64  `json:"percentage"`
			ProjectedPercentage *float64 `json:"projected_percentage"`
		} `json:"tenants"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, it := range list.Tenants {
		if it.Percentage < 100 && it.ProjectedPercentage != nil && *it.ProjectedPercentage > 100 {
			found[demo.OnCourse] = append(found[demo.OnCourse], it.TenantID)
		}
	}

	for _, s := range []demo.State{demo.NearLimit, demo.OverLimit, demo.UsersAtLimit, demo.SessionsAtLimit,
		demo.OnCourse, demo.Unlimited, demo.SkippedField, demo.PlansOnly, demo.Defaults} {
		if len(found[s]) == 0 {
			t.Errorf("no tenant %s", s)
		}
	}
	// Each scenario tenant is in the state it was given.
	for id, s := range demo.Scenarios {
		if !contains(found[s], id) {
			t.Errorf("tenant %s is not %s (found %s: %v)", id, s, s, found[s])
		}
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestPlans(t *testing.T) {
	src, err := demo.Plans()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for id, p := range cat.Plans {
		names[id] = p.Name
	}
	if want := map[string]string{"1": "starter", "2": "pro", "3": "enterprise"}; !reflect.DeepEqual(names, want) {
		t.Errorf("plans %v, want %v", names, want)
	}
	if _, limited := cat.Plans["3"].Limits["messages"]; limited {
		t.Error("enterprise has a messages limit; want unlimited")
	}
	if cat.Len() != 50 {
		t.Errorf("%d tenants, want 50", cat.Len())
	}
	perPlan := map[string]int{}
	for _, row := range cat.Tenants() {
		id, plan := row.ID, row.Plan
		perPlan[plan]++
		if plan == "" && id != "48" && id != "49" && id != "50" {
			t.Errorf("tenant %s has no plan; only 48, 49 and 50 should not", id)
		}
	}
	if perPlan[""] != 3 || perPlan["1"] == 0 || perPlan["2"] == 0 || perPlan["3"] == 0 {
		t.Errorf("tenants per plan %v: want some on every plan and 3 on none", perPlan)
	}
	defaults, ok := src.Defaults()
	if want := (plans.Limits{"messages": 1000, "storage": 104857600, "users": 2, "whatsappSessions": 1}); !ok || !reflect.DeepEqual(defaults, want) {
		t.Errorf("defaults %v, %v; want %v", defaults, ok, want)
	}
}
