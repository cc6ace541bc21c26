package api

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
)

// TestAPIMatchesMetrics: for the same state, every figure the API gives
// is the one /metrics exports (both are views of billing's join).
func TestAPIMatchesMetrics(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres})
	e.seedPlansIssue()
	// More shapes: a tenant unknown to PostgreSQL over its default limits,
	// with a field nobody limits; one with an odd id.
	e.redis.HSet("usage:4:202611", "messages", 1200, "storage", 73400320, "users", 3, "whatsappSessions", 1, "apiCalls", 9)
	e.redis.HSet("usage:we ird:202611", "users", 1)

	// /metrics is not part of the API: fetched without the recording
	// client.
	m := scrapetest.Get(t, nil, e.server.URL+"/metrics", nil)
	if m.Status != 200 {
		t.Fatalf("scrape: %d", m.Status)
	}
	tenants := m.LabelValues("billing_tenant_using_defaults", "tenant_id")
	if len(tenants) != 5 {
		t.Fatalf("tenants in /metrics: %v", tenants)
	}
	for _, id := range tenants {
		u := e.usage(url.PathEscape(id))
		for _, s := range m.Samples("billing_usage", "tenant_id", id) {
			mt := label(s.GetLabel(), "metric_type")
			if got, ok := u.Metrics[mt]; !ok || got.Used == nil || float64(*got.Used) != s.GetGauge().GetValue() {
				t.Errorf("tenant %s %s: API used %v, /metrics %v", id, mt, deref(got.Used), s.GetGauge().GetValue())
			}
		}
		for _, s := range m.Samples("billing_usage_limit", "tenant_id", id) {
			if _, ok := u.Metrics[label(s.GetLabel(), "limit_type")]; !ok {
				t.Errorf("tenant %s: /metrics has a %s limit the API does not list", id, label(s.GetLabel(), "limit_type"))
			}
		}
		for mt, got := range u.Metrics {
			// A field absent from the hash has no series and is used 0; one
			// that could not be read has no series and is used null.
			switch v, ok := m.Value("billing_usage", "tenant_id", id, "metric_type", mt); {
			case ok && (got.Used == nil || float64(*got.Used) != v):
				t.Errorf("tenant %s %s: API used %v, /metrics %v", id, mt, deref(got.Used), v)
			case !ok && got.Used != nil && *got.Used != 0:
				t.Errorf("tenant %s %s: API used %d with no billing_usage series", id, mt, *got.Used)
			}
			limit, hasLimit := m.Value("billing_usage_limit", "tenant_id", id, "limit_type", mt)
			if hasLimit != (got.Limit != nil) || (hasLimit && float64(*got.Limit) != limit) {
				t.Errorf("tenant %s %s: API limit %v, /metrics %v (present %v)", id, mt, deref(got.Limit), limit, hasLimit)
			}
			pct, hasPct := m.Value("billing_usage_percentage", "tenant_id", id, "limit_type", mt)
			if hasPct != (got.Percentage != nil) || (hasPct && *got.Percentage != pct) {
				t.Errorf("tenant %s %s: API percentage %v, /metrics %v (present %v)", id, mt, deref(got.Percentage), pct, hasPct)
			}
		}
		if d := m.MustValue(t, "billing_tenant_using_defaults", "tenant_id", id); (d == 1) != deref(u.UsingDefaults) {
			t.Errorf("tenant %s: using_defaults %v, /metrics %v", id, deref(u.UsingDefaults), d)
		}
		if u.Plan != nil {
			m.MustValue(t, "billing_tenant_plan_info", "tenant_id", id, "plan_id", u.Plan.ID, "plan_name", u.Plan.Name)
		} else {
			m.MustValue(t, "billing_tenant_plan_info", "tenant_id", id, "plan_id", "none")
		}
	}

	// The list's counts are billing_tenants_over_threshold's, and its
	// percentages the per-tenant series.
	for _, s := range m.Samples("billing_tenants_over_threshold") {
		lt, th := label(s.GetLabel(), "limit_type"), label(s.GetLabel(), "threshold")
		l := e.list(fmt.Sprintf("?limit_type=%s&min_percentage=%s&limit=1000", lt, th))
		if float64(l.Total) != s.GetGauge().GetValue() || len(l.Tenants) != l.Total {
			t.Errorf("%s ≥ %s: API lists %d, /metrics counts %v", lt, th, l.Total, s.GetGauge().GetValue())
		}
		for _, it := range l.Tenants {
			if pct := m.MustValue(t, "billing_usage_percentage", "tenant_id", it.TenantID, "limit_type", lt); pct != *it.Percentage {
				t.Errorf("list %s %s: %v, /metrics %v", lt, it.TenantID, *it.Percentage, pct)
			}
		}
	}
	if len(m.Samples("billing_tenants_over_threshold")) == 0 {
		t.Error("no billing_tenants_over_threshold in /metrics")
	}

	// Plans and their counts are billing_tenants_per_plan's.
	p := e.plans()
	for _, pl := range p.Plans {
		if v := m.MustValue(t, "billing_tenants_per_plan", "plan_id", pl.ID, "plan_name", pl.Name); float64(deref(pl.Tenants).(int)) != v {
			t.Errorf("plan %s: %v tenants, /metrics %v", pl.ID, deref(pl.Tenants), v)
		}
	}
	if v := m.MustValue(t, "billing_tenants_per_plan", "plan_id", "none"); float64(*p.Defaults.Tenants) != v {
		t.Errorf("defaults: %d tenants, /metrics %v", *p.Defaults.Tenants, v)
	}

	// The period.
	u := e.usage("1")
	for name, value := range map[string]string{"billing_period_start_timestamp_seconds": u.Period.Start, "billing_period_end_timestamp_seconds": u.Period.End} {
		ts := m.MustValue(t, name)
		if got := strconv.FormatInt(int64(ts), 10); got != unix(t, value) {
			t.Errorf("%s = %s, API %s (%s)", name, got, value, unix(t, value))
		}
	}
}

func label(pairs []*dto.LabelPair, name string) string {
	for _, lp := range pairs {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func unix(t *testing.T, rfc3339 string) string {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(ts.Unix(), 10)
}
