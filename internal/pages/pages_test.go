package pages

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

func TestFormats(t *testing.T) {
	cases := []struct{ got, want string }{
		{count(0), "0"},
		{count(999), "999"},
		{count(1000), "1,000"},
		{count(1234567), "1,234,567"},
		{count(-1234), "-1,234"},
		{bytesIEC(512), "512 B"},
		{bytesIEC(1536), "1.5 KiB"},
		{bytesIEC(3 << 30), "3 GiB"},
		{bytesIEC(10737418240), "10 GiB"},
		{bytesIEC(1<<63 - 1), "8 EiB"},
		{amount("storage", 104857600), "100 MiB"},
		{amount("messages", 104857600), "104,857,600"},
		{percent(92), "92%"},
		{percent(87.26), "87.3%"},
		{percent(100.04), "100%"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseListQuery(t *testing.T) {
	cases := []struct {
		query   string
		want    string // the query encoded back; "" for an error
		page    int
		wantCSV bool
	}{
		{"", "/tenants", 1, false},
		{"band=near&band=reached", "/tenants?band=near&band=reached", 1, false},
		{"band=near,projected&limit_type=users,messages&limit_type=users", "/tenants?band=projected&band=near&limit_type=messages%2Cusers", 1, false},
		{"plan=none&q=Padaria+Estrela&page=3", "/tenants?plan=none&q=Padaria+Estrela", 3, false},
		{"plan=&q=&band=", "/tenants", 1, false}, // empty form fields
		{"format=csv", "/tenants", 1, true},
		{"band=over", "", 0, false},
		{"band=none", "", 0, false},
		{"limit_type=mess%00ages", "", 0, false},
		{"plan=a*", "", 0, false},
		{"plan=1&plan=2", "", 0, false},
		{"q=%07bell", "", 0, false},
		{"q=" + strings.Repeat("x", 257), "", 0, false},
		{"page=0", "", 0, false},
		{"page=-1", "", 0, false},
		{"page=1e3", "", 0, false},
		{"page=99999999999", "", 0, false},
		{"format=json", "", 0, false},
		{"sort=name", "", 0, false},
		{"q=%zz", "", 0, false},
		{"q=" + strings.Repeat("x", maxQueryLen), "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			q, err := parseListQuery(tc.query)
			if tc.want == "" {
				if err == nil {
					t.Errorf("accepted: %+v", q)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := q.encode(1, false); got != tc.want || q.Page != tc.page || q.CSV != tc.wantCSV {
				t.Errorf("got %s page %d csv %v, want %s page %d csv %v", got, q.Page, q.CSV, tc.want, tc.page, tc.wantCSV)
			}
		})
	}
}

func TestWantsCSV(t *testing.T) {
	cases := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"text/csv", true},
		{"text/csv; charset=utf-8", true},
		{"text/html,application/xhtml+xml,*/*;q=0.8", false},
		{"application/json, text/csv", true},
		{"*/*", false},
		{"garbage;;;", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/tenants", nil)
		r.Header.Set("Accept", tc.accept)
		if got := wantsCSV(listQuery{}, r); got != tc.want {
			t.Errorf("Accept %q: CSV %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{"Padaria": "Padaria", "=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-1": "'-1",
		"@x": "'@x", "": ""} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckGrafanaURL(t *testing.T) {
	for u, ok := range map[string]bool{"": true, "https://grafana.example.com": true, "http://127.0.0.1:3000/grafana/": true,
		"grafana.example.com": false, "javascript:alert(1)": false, "https://g/?a=1": false, "https://g/#x": false, "%zz": false} {
		if err := CheckGrafanaURL(u); (err == nil) != ok {
			t.Errorf("CheckGrafanaURL(%q) = %v", u, err)
		}
	}
}

// memStore holds usage in memory for the benchmark, which measures the
// pages, not Redis.
type memStore struct{ tenants map[string]usage.Counters }

func (m memStore) ReadUsage(_ context.Context, _ usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	s := usage.NewSnapshot(periodID)
	for id, c := range m.tenants {
		s.Tenants[id] = c
	}
	return s, nil
}

func (m memStore) ReadTenant(_ context.Context, key string) (usage.Counters, bool, map[usage.Reason]int, error) {
	return nil, false, nil, nil
}

func (m memStore) Info(context.Context) billing.Info { return billing.Info{} }

// BenchmarkList100k renders a page of /tenants over 100,000 tenants: from
// a read already ranked, and from a new read each time.
func BenchmarkList100k(b *testing.B) {
	const n = 100_000
	store := memStore{tenants: make(map[string]usage.Counters, n)}
	for i := range n {
		store.tenants[strconv.Itoa(i)] = usage.CountersOf(map[string]int64{
			"messages": int64(i % 1300), "storage": int64(i%97) << 20, "users": int64(i % 3), "whatsappSessions": int64(i % 2)})
	}
	at := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	defaults := plans.Limits{"messages": 1000, "storage": 100 << 20, "users": 2, "whatsappSessions": 1}
	for _, bc := range []struct {
		name   string
		maxAge time.Duration
	}{{"ranked", time.Hour}, {"fresh", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			svc := billing.New(store, billing.WithClock(func() time.Time { return at }), billing.WithMaxAge(bc.maxAge),
				billing.WithConfig(billing.Config{Defaults: defaults}))
			defer svc.Close()
			h := New(svc)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/tenants", nil)) // the first read
			for i := 0; b.Loop(); i++ {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/tenants?page="+strconv.Itoa(1+i%100), nil))
				if w.Code != http.StatusOK || strings.Count(w.Body.String(), "data-tenant-id=") != PageSize {
					b.Fatalf("status %d, %d rows", w.Code, strings.Count(w.Body.String(), "data-tenant-id="))
				}
			}
		})
	}
}
