package api

import (
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
)

// Plans for the skipped-data table: plan 2's storage limit is negative and
// plan 3's users limit is not an integer (the query makes it 2.5), so each
// has one limit the source cannot read next to good ones.
const unreadableLimitsSQL = `
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions)
VALUES (1, 'starter', 5000, NULL, 5, NULL), (2, 'bad storage', 5000, -1, 5, NULL), (3, 'bad users', 5000, NULL, 5, NULL);
INSERT INTO tenants (id, name, plan_id) VALUES
  (1, 'ok', 1), (11, 'neg', 1), (12, 'frac', 1), (13, 'huge', 1), (14, 'empty', 1), (15, 'text', 1),
  (16, 'string', 1), (17, 'list', 1), (21, 'negative limit', 2), (22, 'fractional limit', 3);`

const unreadableLimitsQuery = `SELECT t.id AS tenant_id, COALESCE(p.id, t.plan_id) AS plan_id, p.name AS plan_name,
       p.max_messages AS "limit_messages", p.max_storage_bytes AS "limit_storage",
       CASE WHEN p.id = 3 THEN 2.5 ELSE p.max_users END AS "limit_users",
       p.max_whatsapp_sessions AS "limit_whatsappSessions"
FROM tenants t FULL OUTER JOIN plans p ON p.id = t.plan_id`

type unavailableJSON struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// TestSkippedDataYieldsNoNumber: where a usage field or a limit could not
// be read, nothing is derived from it, in /metrics and in the API: no
// percentage, no threshold count, no projection, no place in the list;
// the API says it is unavailable and why; the tenant's other limit types
// are intact. One tenant per skip reason, real redis-server and
// PostgreSQL. Threshold 0 counts every tenant that has a percentage, so a
// skipped field read as 0 % would be counted there.
func TestSkippedDataYieldsNoNumber(t *testing.T) {
	e := newEnv(t, envConfig{plans: plansPostgres, plansSQL: unreadableLimitsSQL, plansQuery: unreadableLimitsQuery,
		thresholds: []float64{0, 80}})
	key := func(id string) string { return "usage:" + id + ":202611" }

	cases := []struct {
		name, tenant string
		seed         func(key string)
		// Expected per limit type: an unavailable one with its source and
		// reason, or its percentage.
		unavailable map[string]unavailableJSON
		intact      map[string]float64
		used        map[string]int64 // readable usage of the unavailable types
	}{
		{name: "good data", tenant: "1",
			seed:   func(k string) { e.redis.HSet(k, "messages", 4500, "users", 4) },
			intact: map[string]float64{"messages": 90, "users": 80}},
		{name: "negative value", tenant: "11",
			seed:        func(k string) { e.redis.HSet(k, "messages", "-5", "users", 4) },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "invalid_value"}},
			intact:      map[string]float64{"users": 80}},
		{name: "fraction", tenant: "12",
			seed:        func(k string) { e.redis.HSet(k, "messages", "1.5", "users", 4) },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "invalid_value"}},
			intact:      map[string]float64{"users": 80}},
		{name: "beyond int64", tenant: "13",
			seed:        func(k string) { e.redis.HSet(k, "messages", "99999999999999999999", "users", 4) },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "invalid_value"}},
			intact:      map[string]float64{"users": 80}},
		{name: "empty value", tenant: "14",
			seed:        func(k string) { e.redis.HSet(k, "messages", "", "users", 4) },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "invalid_value"}},
			intact:      map[string]float64{"users": 80}},
		{name: "not a number", tenant: "15",
			seed:        func(k string) { e.redis.HSet(k, "messages", "abc", "users", 4) },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "invalid_value"}},
			intact:      map[string]float64{"users": 80}},
		{name: "string key", tenant: "16",
			seed:        func(k string) { e.redis.Do("SET", k, "4500") },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "wrong_type"}, "users": {"redis", "wrong_type"}}},
		{name: "list key", tenant: "17",
			seed:        func(k string) { e.redis.Do("RPUSH", k, "4500") },
			unavailable: map[string]unavailableJSON{"messages": {"redis", "wrong_type"}, "users": {"redis", "wrong_type"}}},
		{name: "negative limit", tenant: "21",
			seed:        func(k string) { e.redis.HSet(k, "messages", 4500, "storage", 100, "users", 4) },
			unavailable: map[string]unavailableJSON{"storage": {"postgres", "negative_limit"}},
			intact:      map[string]float64{"messages": 90, "users": 80},
			used:        map[string]int64{"storage": 100}},
		{name: "non-integer limit", tenant: "22",
			seed:        func(k string) { e.redis.HSet(k, "messages", 4500, "users", 4) },
			unavailable: map[string]unavailableJSON{"users": {"postgres", "non_integer_limit"}},
			intact:      map[string]float64{"messages": 90},
			used:        map[string]int64{"users": 4}},
	}
	planLimits := map[string]int64{"messages": 5000, "users": 5} // every plan's readable limits
	for _, tc := range cases {
		tc.seed(key(tc.tenant))
	}

	m := scrapetest.Get(t, nil, e.server.URL+"/metrics", nil)
	withPct := map[string][]string{} // limit type -> tenants with a percentage
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.tenant
			for lt, want := range tc.intact {
				withPct[lt] = append(withPct[lt], id)
				if got, ok := m.Value("billing_usage_percentage", "tenant_id", id, "limit_type", lt); !ok || got != want {
					t.Errorf("metrics: %s percentage = %v (present %v), want %v", lt, got, ok, want)
				}
			}
			for lt, u := range tc.unavailable {
				if s := m.Samples("billing_usage_percentage", "tenant_id", id, "limit_type", lt); len(s) != 0 {
					t.Errorf("metrics: a %s percentage of %v from data that could not be read", lt, s[0].GetGauge().GetValue())
				}
				limit, hasLimit := m.Value("billing_usage_limit", "tenant_id", id, "limit_type", lt)
				_, hasUsage := m.Value("billing_usage", "tenant_id", id, "metric_type", lt)
				switch u.Source {
				case "redis": // the limit stays, the usage is absent
					if !hasLimit || limit != float64(planLimits[lt]) || hasUsage {
						t.Errorf("metrics: %s limit %v (present %v), usage present %v; want the limit and no usage", lt, limit, hasLimit, hasUsage)
					}
				case "postgres": // the usage stays, the limit is absent
					if hasLimit || !hasUsage {
						t.Errorf("metrics: %s limit present %v, usage present %v; want the usage and no limit", lt, hasLimit, hasUsage)
					}
				}
			}

			u := e.usage(id)
			for lt, want := range tc.intact {
				got := u.Metrics[lt]
				if got.Unavailable != nil || got.Percentage == nil || *got.Percentage != want {
					t.Errorf("API: %s = %+v, want percentage %v", lt, got, want)
				}
			}
			for lt, want := range tc.unavailable {
				got, listed := u.Metrics[lt]
				if !listed || got.Unavailable == nil || *got.Unavailable != want {
					t.Errorf("API: %s unavailable = %v (listed %v), want %v", lt, deref(got.Unavailable), listed, want)
				}
				if got.Percentage != nil || got.Remaining != nil || got.Exceeded != nil || got.ProjectedPercentage != nil {
					t.Errorf("API: %s has figures derived from data that could not be read: %+v", lt, got)
				}
				switch want.Source {
				case "redis":
					if got.Used != nil || got.Projected != nil || deref(got.Limit) != planLimits[lt] {
						t.Errorf("API: %s used %v, projected %v, limit %v; want null, null, %d", lt, deref(got.Used), deref(got.Projected), deref(got.Limit), planLimits[lt])
					}
				case "postgres":
					if got.Limit != nil || deref(got.Used) != tc.used[lt] {
						t.Errorf("API: %s limit %v, used %v; want null and %d", lt, deref(got.Limit), deref(got.Used), tc.used[lt])
					}
				}
			}
		})
	}

	// Threshold counts and the near-limit list hold exactly the tenants
	// with a percentage.
	for _, lt := range []string{"messages", "users", "storage"} {
		want := withPct[lt]
		for _, th := range []string{"0", "80"} {
			if got := m.MustValue(t, "billing_tenants_over_threshold", "limit_type", lt, "threshold", th); got != float64(len(want)) {
				t.Errorf("billing_tenants_over_threshold{%s,%s} = %v, want %d (%v)", lt, th, got, len(want), want)
			}
		}
		if lt == "storage" {
			continue // no plan has a readable storage limit: not a listable type
		}
		got := e.list("?limit_type=" + lt + "&min_percentage=0&limit=1000").ids()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("API list of %s: %v, want %v", lt, got, want)
		}
	}

	// Skips are counted by reason, as before.
	for _, c := range []struct {
		source, reason string
		want           float64
	}{{"redis", "invalid_value", 5}, {"redis", "wrong_type", 2}, {"postgres", "negative_limit", 1}, {"postgres", "non_integer_limit", 1}} {
		if got := m.MustValue(t, "billing_exporter_invalid_data_items", "source", c.source, "reason", c.reason); got != c.want {
			t.Errorf("invalid_data_items{%s,%s} = %v, want %v", c.source, c.reason, got, c.want)
		}
	}

	// The plans list says which limits could not be read: absent from
	// limits, but not unlimited.
	r := e.get("/api/v1/plans")
	r.wantStatus(t, http.StatusOK)
	var p struct {
		Plans []struct {
			ID               string            `json:"id"`
			Limits           map[string]int64  `json:"limits"`
			UnreadableLimits map[string]string `json:"unreadable_limits"`
		} `json:"plans"`
	}
	r.decode(t, &p)
	want := map[string]map[string]string{"1": {}, "2": {"storage": "negative_limit"}, "3": {"users": "non_integer_limit"}}
	for _, pl := range p.Plans {
		if !maps.Equal(pl.UnreadableLimits, want[pl.ID]) {
			t.Errorf("plan %s: unreadable_limits %v, want %v", pl.ID, pl.UnreadableLimits, want[pl.ID])
		}
		for lt := range pl.UnreadableLimits {
			if _, ok := pl.Limits[lt]; ok {
				t.Errorf("plan %s: %s is both a limit and unreadable", pl.ID, lt)
			}
		}
	}
}
