package pages

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
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
	s.Tenants = usage.TenantMap(maps.Clone(m.tenants))
	return s, nil
}

func (m memStore) ReadTenant(_ context.Context, key string) (usage.Counters, bool, map[usage.Reason]int, error) {
	c, ok := m.tenants[strings.Split(key, ":")[1]]
	return c, ok, nil, nil
}

// flakyPlans serves a plans file until it is told to fail.
type flakyPlans struct {
	src  *plans.FileSource
	down atomic.Bool
}

func (f *flakyPlans) Load(ctx context.Context) (*plans.Catalog, error) {
	if f.down.Load() {
		return nil, errors.New("plans source down")
	}
	return f.src.Load(ctx)
}

// TestTenantPage: the figures in human units and the notes a tenant's
// state calls for, every value escaped.
func TestTenantPage(t *testing.T) {
	src, err := plans.ParseFile([]byte(`
plans:
  - {id: 1, name: pro, limits: {messages: 5000, storage: 10737418240, users: 5}}
tenants:
  - {id: 42, name: Padaria Estrela, plan: 1}
  - {id: plans-only, plan: 1}
  - {id: skipped, plan: 1}
  - {id: marked, name: "<img src=x onerror=alert(1)>", plan: 1}
`), "plans.yml")
	if err != nil {
		t.Fatal(err)
	}
	source := &flakyPlans{src: src}
	store := memStore{tenants: map[string]usage.Counters{
		"42":       usage.CountersOf(map[string]int64{"messages": 4600, "storage": 3 << 30, "users": 5, "apiCalls": 12345}),
		"defaults": usage.CountersOf(map[string]int64{"messages": 10}),
		"skipped":  usage.CountersOf(map[string]int64{"messages": usage.UnreadableValue(usage.ReasonInvalidValue), "users": 1}),
		"marked":   usage.CountersOf(map[string]int64{"messages": 1}),
	}}
	at := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	svc := billing.New(store, billing.WithClock(func() time.Time { return at }), billing.WithLocation(sp),
		billing.WithConfig(billing.Config{Plans: source, PlansName: "file", Defaults: plans.Limits{"messages": 1000}}))
	defer svc.Close()
	h := New(svc, WithGrafanaURL("https://grafana.example.com/"))
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code, w.Body.String()
	}
	cases := []struct {
		path   string
		status int
		want   []string
		not    []string
	}{
		{"/tenants/42", 200, []string{"Padaria Estrela", "pro (plan 1)", "92%", "4,600", "5,000", "3 GiB", "10 GiB", "30%",
			"users", "100%", "reached above 100%", "band-near", "apiCalls", "12,345", "no limit",
			"reached on Monday 16 November 2026", "Tuesday 1 December 2026, 00:00", "America/Sao_Paulo",
			"https://grafana.example.com/d/billing-tenant/billing-per-tenant?var-tenant_id=42"},
			[]string{"default limits apply", "No usage recorded"}},
		{"/tenants/defaults", 200, []string{"no active plan (default limits)", "default limits apply", "1%"}, nil},
		{"/tenants/plans-only", 200, []string{"No usage recorded this period"}, []string{"default limits apply"}},
		{"/tenants/skipped", 200, []string{"messages: skipped: the usage field could not be read (invalid_value)"}, nil},
		{"/tenants/marked", 200, []string{"&lt;img src=x onerror=alert(1)&gt;"}, []string{"<img src=x"}},
		{"/tenants/nobody", 404, []string{"Unknown tenant", "&#34;nobody&#34;"}, nil},
		{"/tenants/a%2Ab", 400, []string{"not a valid tenant id"}, nil},
		{"/tenants/42?x=1", 400, []string{"no query parameters"}, nil},
		{"/tenants/42/more", 404, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			status, body := get(tc.path)
			if status != tc.status {
				t.Fatalf("status %d, want %d", status, tc.status)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in the page", s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(body, s) {
					t.Errorf("%q in the page", s)
				}
			}
		})
	}
	t.Run("stale plans", func(t *testing.T) {
		source.down.Store(true)
		if _, err := svc.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, body := get("/tenants/42"); !strings.Contains(body, "The plans source cannot be read") || !strings.Contains(body, "92%") {
			t.Error("no note of stale plans, or no limits from the last read")
		}
	})
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

// TestListPage: the list's filters, pages and links over 120 tenants.
func TestListPage(t *testing.T) {
	src, err := plans.ParseFile([]byte(`
plans:
  - {id: 1, name: starter, limits: {messages: 1000}}
  - {id: 2, name: pro, limits: {messages: 100000}}
tenants:
  - {id: "0", name: Padaria Estrela, plan: 2}
`), "plans.yml")
	if err != nil {
		t.Fatal(err)
	}
	store := memStore{tenants: map[string]usage.Counters{}}
	for i := range 120 { // 81 % to 100 %: near or reached, on the defaults
		store.tenants[strconv.Itoa(1000+i)] = usage.CountersOf(map[string]int64{"messages": int64(810 + i*190/119)})
	}
	store.tenants["0"] = usage.CountersOf(map[string]int64{"messages": 95000})
	store.tenants["low"] = usage.CountersOf(map[string]int64{"messages": 1})
	at := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	svc := billing.New(store, billing.WithClock(func() time.Time { return at }),
		billing.WithConfig(billing.Config{Plans: src, PlansName: "file", Defaults: plans.Limits{"messages": 1000}}))
	defer svc.Close()
	h := New(svc)
	cases := []struct {
		query       string
		first, last string
		rows        int
		total       string
		links       []string
	}{
		{"", "1119", "1071", PageSize, "121", []string{`href="/tenants?page=2"`, `href="/tenants?format=csv"`}},
		{"?page=3", "1020", "1000", 21, "121", []string{`href="/tenants?page=2"`}},
		{"?page=9", "", "", 0, "121", nil},
		{"?plan=2", "0", "0", 1, "1", []string{`<option value="2" selected>pro (2)</option>`}},
		{"?plan=none&band=reached", "1119", "1119", 1, "1", []string{`value="reached" checked`}},
		{"?q=PADARIA", "0", "0", 1, "1", []string{`value="PADARIA"`}},
		{"?q=1005", "1005", "1005", 1, "1", nil},
		{"?band=projected&limit_type=messages", "", "", 0, "0", nil},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/tenants"+tc.query, nil))
			body := w.Body.String()
			ids := rowIDs(body)
			if w.Code != http.StatusOK || len(ids) != tc.rows || len(ids) > 0 && (ids[0] != tc.first || ids[len(ids)-1] != tc.last) {
				t.Fatalf("status %d, %d rows %v", w.Code, len(ids), ids)
			}
			if !strings.Contains(body, `<span id="total">`+tc.total+`</span>`) {
				t.Errorf("total is not %s", tc.total)
			}
			for _, l := range tc.links {
				if !strings.Contains(body, l) {
					t.Errorf("no %s", l)
				}
			}
		})
	}
	for _, q := range []string{"?band=over", "?page=0", "?plan=%2A", "?sort=id", "?q=%00"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/tenants"+q, nil))
		if w.Code != http.StatusBadRequest || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%s: status %d %s", q, w.Code, w.Header().Get("Content-Type"))
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/tenants", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", w.Code)
	}
}

func rowIDs(body string) []string {
	var out []string
	for _, part := range strings.Split(body, `data-tenant-id="`)[1:] {
		out = append(out, part[:strings.IndexByte(part, '"')])
	}
	return out
}
