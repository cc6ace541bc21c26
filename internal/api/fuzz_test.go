package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// The fuzz targets drive the API handler with arbitrary request lines and
// check, for every input, what a client may rely on: no panic; a status the
// route can answer; errors as application/problem+json whose status member
// is the HTTP status and whose 400s name the parameter; every response valid
// against openapi.yaml; a body bounded whatever the input's size; and
// nothing malformed reaching the usage store (an accepted tenant id is
// looked up under exactly its key, a rejected one not at all).
//
// They run over memReader, an in-memory usage reader: what they test is the
// API's parsing and answers, thousands of requests a second, not Redis,
// which every other test of this package uses for real.

// memReader is an in-memory billing.UsageReader over fixed usage of period
// 202611 that records the keys looked up one by one.
type memReader struct {
	pattern usage.KeyPattern
	tenants map[string]usage.Counters

	mu      sync.Mutex
	lookups []string
}

func (m *memReader) ReadUsage(_ context.Context, _ usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	snap := usage.NewSnapshot(periodID)
	snap.Tenants = usage.TenantMap(maps.Clone(m.tenants))
	snap.Keys = len(m.tenants)
	return snap, nil
}

// Info answers like a server whose INFO is empty: the API shows none of it.
func (m *memReader) Info(context.Context) billing.Info {
	return billing.Info{Fields: map[string]string{}}
}

func (m *memReader) ReadTenant(_ context.Context, key string) (usage.Counters, bool, map[usage.Reason]int, error) {
	m.mu.Lock()
	m.lookups = append(m.lookups, key)
	m.mu.Unlock()
	tenant, _, err := m.pattern.Parse(key)
	if err != nil {
		return nil, false, map[usage.Reason]int{}, nil
	}
	c, ok := m.tenants[tenant]
	return c, ok, map[usage.Reason]int{}, nil
}

// takeLookups returns the keys looked up since the last call.
func (m *memReader) takeLookups() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.lookups
	m.lookups = nil
	return out
}

const fuzzPlansYAML = `
plans:
  - {id: 1, name: starter, limits: {messages: 5000}}
  - {id: 2, name: pro, limits: {messages: 50000, users: 10}}
tenants:
  - {id: 1, plan: 1}
  - {id: 2, plan: 2}
  - {id: 3}
  - {id: "ação", plan: 2}
  - {id: "quo\"te", plan: 1}
`

// fuzzAPI is the handler under test and what checks its answers.
type fuzzAPI struct {
	h      *Handler
	reader *memReader
	doc    *openAPIDoc
}

var (
	fuzzOnce sync.Once
	fuzzEnv  *fuzzAPI
	fuzzErr  error
)

// newFuzzAPI builds the handler once per process (each fuzz worker is
// one): tenants 1-3 and a few odd ids, and 150 more for pagination.
func newFuzzAPI(tb testing.TB) *fuzzAPI {
	tb.Helper()
	fuzzOnce.Do(func() {
		doc, err := parseOpenAPI(openapiYAML)
		if err != nil {
			fuzzErr = err
			return
		}
		src, err := plans.ParseFile([]byte(fuzzPlansYAML), "fuzz-plans.yml")
		if err != nil {
			fuzzErr = err
			return
		}
		r := &memReader{pattern: usage.MustParseKeyPattern(usage.DefaultKeyPattern), tenants: map[string]usage.Counters{
			"1": usage.CountersOf(map[string]int64{"messages": 4250}), "2": usage.CountersOf(map[string]int64{"messages": 10, "users": 3}), "3": usage.CountersOf(map[string]int64{"messages": 10}),
			"a:b": usage.CountersOf(map[string]int64{"messages": 6}), "ação": usage.CountersOf(map[string]int64{"messages": 5}), `quo"te`: usage.CountersOf(map[string]int64{"messages": 100}),
		}}
		for i := range 150 {
			r.tenants[fmt.Sprintf("t%03d", i)] = usage.CountersOf(map[string]int64{"messages": int64(i * 7), "users": int64(i % 4)})
		}
		svc := billing.New(r,
			billing.WithClock(func() time.Time { return november }),
			billing.WithConfig(billing.Config{Plans: src, PlansName: "file", Defaults: plansIssueDefaults}))
		fuzzEnv = &fuzzAPI{h: New(svc, WithMetrics(NewMetrics(prometheus.NewRegistry()))), reader: r, doc: doc}
	})
	if fuzzErr != nil {
		tb.Fatal(fuzzErr)
	}
	return fuzzEnv
}

// maxProblemBody bounds a problem document whatever the input: details
// quote client input truncated, and instance, the escaped path, is at most
// MaxURILength bytes (past it: 414, without instance), each of which JSON
// may escape into six (\u0026).
const maxProblemBody = 6*MaxURILength + 1024

// serve runs one request; ok is false when the request line is one net/http
// itself would refuse before any handler (an unparseable URI or method).
func (f *fuzzAPI) serve(method, target string) (rec *httptest.ResponseRecorder, u *url.URL, ok bool) {
	u, err := url.ParseRequestURI(target)
	if err != nil || !validMethod(method) {
		return nil, nil, false
	}
	req := (&http.Request{
		Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: "exporter.test",
	}).WithContext(context.Background())
	rec = httptest.NewRecorder()
	f.reader.takeLookups()
	f.h.ServeHTTP(rec, req)
	return rec, u, true
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

// check applies what holds for every answer and returns the decoded
// problem for error statuses.
func (f *fuzzAPI) check(t *testing.T, method string, u *url.URL, rec *httptest.ResponseRecorder, allowed ...int) *problemBody {
	t.Helper()
	status := rec.Code
	if !slices.Contains(allowed, status) {
		t.Fatalf("%s %q: status %d, want one of %v: %s", method, u.RequestURI(), status, allowed, rec.Body.Bytes())
	}
	body := rec.Body.Bytes()
	if method == http.MethodHead {
		body = nil // net/http sends no body in answer to HEAD
	}
	// Methods are case-sensitive ("GeT" is not GET: 405), but the
	// validator finds operations by lower-cased method; give it a method
	// that cannot be mistaken for a documented one.
	docMethod := method
	if method != strings.ToUpper(method) {
		docMethod = "X-" + strings.ToUpper(method)
	}
	ex := exchange{test: "fuzz", method: docMethod, path: u.EscapedPath(), query: u.RawQuery,
		status: status, header: rec.Header(), body: body}
	if _, errs := f.doc.check(ex); len(errs) > 0 {
		t.Fatalf("%s: not as openapi.yaml says:\n\t%s\n\tbody: %.500s", ex, strings.Join(errs, "\n\t"), body)
	}
	if status < 400 {
		return nil
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: error with content type %q", ex, ct)
	}
	if method == http.MethodHead {
		return &problemBody{Status: status}
	}
	if len(body) > maxProblemBody {
		t.Fatalf("%s: problem of %d bytes, over %d: %.300s", ex, len(body), maxProblemBody, body)
	}
	var p problemBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: problem is not JSON: %v: %s", ex, err, body)
	}
	if p.Status != status || p.Type == "" || p.Title == "" {
		t.Fatalf("%s: problem %+v", ex, p)
	}
	if status == http.StatusBadRequest && (p.Parameter == "" || p.Type != ProblemInvalidParameter) {
		t.Fatalf("%s: a 400 that does not name its parameter: %+v", ex, p)
	}
	return &p
}

// FuzzTenantID: GET /api/v1/tenants/{segment}/usage for any segment.
func FuzzTenantID(f *testing.F) {
	for _, s := range []string{
		"1", "2", "3", "404", "a:b", "ação", url.PathEscape("ação"), "quo%22te", `quo"te`, "t042",
		"*", "1*", "1%3F", "%5B1%5D", "1%5C", "1%2F2", "..%2F1", "%2E%2E", ".", "..", "", "1%00", "1%0A",
		"a%09b", "%FF", "%E2%80%8B", "%", "%zz", "%2", strings.Repeat("9", 128), strings.Repeat("9", 129),
		strings.Repeat("9", 5000), "1/2", "1?x=1", "1?", "1#frag", "a b", "%20", "+", "~", "1;x=2",
		strings.Repeat("%FF", 50), "\u202e1", "%C0%AF", "%EF%BB%BF1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, segment string) {
		api := newFuzzAPI(t)
		rec, u, ok := api.serve(http.MethodGet, "/api/v1/tenants/"+segment+"/usage")
		if !ok {
			return
		}
		p := api.check(t, http.MethodGet, u, rec, 200, 400, 404, 414)
		lookups := api.reader.takeLookups()

		// Was the segment routed as {tenant_id} (one segment, not a dot
		// segment) and its id valid?
		raw, routed := strings.CutPrefix(u.EscapedPath(), "/api/v1/tenants/")
		raw, suffixed := strings.CutSuffix(raw, "/usage")
		id, _ := url.PathUnescape(raw)
		routed = routed && suffixed && !slices.Contains([]string{"", ".", ".."}, raw) && !strings.Contains(raw, "/")
		looked := routed && usage.ValidateID(usage.TenantID, id) == nil && u.RawQuery == "" &&
			len(u.EscapedPath()) <= MaxURILength
		switch {
		case looked:
			want := usage.MustParseKeyPattern(usage.DefaultKeyPattern).Key(id, "202611")
			if len(lookups) != 1 || lookups[0] != want {
				t.Fatalf("tenant %q: looked up %q, want [%q]", id, lookups, want)
			}
			// The path the list gives for this id routes back to it.
			back, _, _ := api.serve(http.MethodGet, TenantUsagePath(id))
			if got := api.reader.takeLookups(); back.Code != rec.Code || !slices.Equal(got, lookups) {
				t.Fatalf("TenantUsagePath(%q) = %q: %d, looked up %q; want %d, %q", id, TenantUsagePath(id), back.Code, got, rec.Code, lookups)
			}
		case len(lookups) > 0:
			t.Fatalf("%q (rejected: %d) reached the store as %q", segment, rec.Code, lookups)
		}
		switch rec.Code {
		case http.StatusOK:
			var v usageJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.TenantID != id || !looked {
				t.Fatalf("200 for %q: %v %+v", segment, err, v)
			}
			if rec.Body.Len() > 16<<10 {
				t.Fatalf("usage document of %d bytes", rec.Body.Len())
			}
		case http.StatusNotFound:
			if looked && p.Type != ProblemUnknownTenant {
				t.Fatalf("a looked-up tenant answered %+v", p)
			}
		case http.StatusBadRequest:
			if looked {
				t.Fatalf("a looked-up tenant answered 400: %+v", p)
			}
		}
	})
}

// FuzzTenantsQuery: GET /api/v1/tenants?{query} for any query. Accepted
// queries list tenants at or above min_percentage, highest first, at most
// limit of them, and the next page (when there is one) follows on.
func FuzzTenantsQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit_type=messages", "limit_type=users&min_percentage=50", "min_percentage=80", "limit=2",
		"limit=1000", "limit=1001", "limit=0", "limit=-1", "limit=1e3", "limit=01", "min_percentage=NaN",
		"min_percentage=Inf", "min_percentage=1e6", "min_percentage=1000000.0000000001", "min_percentage=-0",
		"min_percentage=0x10", "min_percentage=1_0", "limit_type=", "limit_type=nope", "limit_type=%FF",
		"limit_type=a%0Ab", "limit_type=" + strings.Repeat("x", 65), "limit=2&limit=3", "foo=bar", "=1", "&", "&&",
		";", "a;b", "%", "%zz=1", "limit=2&cursor=eyJ2IjoxLCJ0IjoibWVzc2FnZXMiLCJwIjo4NSwiaSI6IjEifQ",
		"cursor=", "cursor=!!!", "cursor=e30", "cursor=bnVsbA", "cursor=" + strings.Repeat("A", 3000),
		"cursor=eyJ2IjoxLCJ0IjoidXNlcnMiLCJwIjo4NSwiaSI6IjEifQ", "limit_type=messages&cursor=eyJ2IjoyfQ",
		"cursor=eyJ2IjoxLCJ0IjoibWVzc2FnZXMiLCJwIjotMSwiaSI6IjEifQ", "cursor=eyJ2IjoxLCJ0IjoibWVzc2FnZXMiLCJwIjoxZTMwOSwiaSI6IjEifQ",
		"q=" + strings.Repeat("x", 5000), "min_percentage=85&limit_type=messages&limit=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		api := newFuzzAPI(t)
		rec, u, ok := api.serve(http.MethodGet, "/api/v1/tenants?"+query)
		if !ok {
			return
		}
		api.check(t, http.MethodGet, u, rec, 200, 400, 404, 414)
		if n := len(api.reader.takeLookups()); n > 0 {
			t.Fatalf("the list looked up %d single keys", n)
		}
		if rec.Code != http.StatusOK {
			return
		}
		var l listJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		checkPage(t, &l)
		if l.NextCursor == nil {
			return
		}
		// The next page: same parameters, the cursor given.
		q := u.Query()
		q.Set("cursor", *l.NextCursor)
		rec2, u2, _ := api.serve(http.MethodGet, "/api/v1/tenants?"+q.Encode())
		api.check(t, http.MethodGet, u2, rec2, 200)
		var next listJSON
		if err := json.Unmarshal(rec2.Body.Bytes(), &next); err != nil {
			t.Fatal(err)
		}
		checkPage(t, &next)
		last := l.Tenants[len(l.Tenants)-1]
		for _, it := range next.Tenants {
			if slices.Contains(l.ids(), it.TenantID) {
				t.Fatalf("tenant %q on two pages", it.TenantID)
			}
			if *it.Percentage > *last.Percentage {
				t.Fatalf("the next page starts above the last: %v > %v", *it.Percentage, *last.Percentage)
			}
		}
	})
}

func checkPage(t *testing.T, l *listJSON) {
	t.Helper()
	if len(l.Tenants) > l.Limit || l.Total < len(l.Tenants) || l.Limit < 1 || l.Limit > MaxListLimit {
		t.Fatalf("page of %d, limit %d, total %d", len(l.Tenants), l.Limit, l.Total)
	}
	for i, it := range l.Tenants {
		if it.Percentage == nil || *it.Percentage < l.MinPercentage {
			t.Fatalf("tenant %q at %v below min_percentage %v", it.TenantID, it.Percentage, l.MinPercentage)
		}
		if i > 0 {
			prev := l.Tenants[i-1]
			if *it.Percentage > *prev.Percentage || (*it.Percentage == *prev.Percentage && it.TenantID < prev.TenantID) {
				t.Fatalf("not in order: %q (%v) after %q (%v)", it.TenantID, *it.Percentage, prev.TenantID, *prev.Percentage)
			}
		}
	}
	if l.NextCursor != nil && len(l.Tenants) != l.Limit {
		t.Fatalf("a next cursor after a short page of %d (limit %d)", len(l.Tenants), l.Limit)
	}
}

// FuzzRequestLine: any method, path and query under /api/: a documented
// status, problem+json for errors, valid against openapi.yaml.
func FuzzRequestLine(f *testing.F) {
	for _, s := range []struct{ method, path, query string }{
		{"GET", "/api/v1/plans", ""}, {"GET", "/api/v1/plans", "x=1"}, {"GET", "/api/v1/openapi.yaml", ""},
		{"GET", "/api/v1/openapi.yaml", "v=2"}, {"POST", "/api/v1/plans", ""}, {"HEAD", "/api/v1/tenants", ""},
		{"DELETE", "/api/v1/tenants/1/usage", ""}, {"GET", "/api/v1/%70lans", ""}, {"GET", "/api/v1/", ""},
		{"GET", "/api/v2/plans", ""}, {"GET", "/api/v1/tenants/1/usage/", ""}, {"GET", "/api//v1/plans", ""},
		{"GET", "/api/v1/tenants/1/usage", "a=1"}, {"GET", "/api/v1/plans/..", ""}, {"GET", "/api/v1/tenants/%2F/usage", ""},
		{"GET", "/api/" + strings.Repeat("a/", 3000), ""}, {"OPTIONS", "/api/v1/plans", ""}, {"BREW", "/api/v1/plans", ""},
		{"GET", "/api/v1/tenants", "limit=5"}, {"GET", "/api/%76%31/tenants", ""},
	} {
		f.Add(s.method, s.path, s.query)
	}
	f.Fuzz(func(t *testing.T, method, path, query string) {
		if !strings.HasPrefix(path, "/api/") {
			return // main's mux sends only /api/ here
		}
		api := newFuzzAPI(t)
		target := path
		if query != "" {
			target += "?" + query
		}
		rec, u, ok := api.serve(method, target)
		if !ok {
			return
		}
		allowed := []int{200, 400, 404, 405, 414}
		api.check(t, method, u, rec, allowed...)
		if method != http.MethodGet && rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound && rec.Code != http.StatusRequestURITooLong {
			t.Fatalf("%s answered %d", method, rec.Code)
		}
		if rec.Code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodGet {
			t.Fatalf("405 with Allow %q", rec.Header().Get("Allow"))
		}
	})
}

// TestHostileInputAllocationBounded: a request for an id of 1 MB (past the
// 414 limit) or a query of 1 MB costs a bounded, linear amount of memory:
// no more than a few copies of the input, never anything quadratic.
func TestHostileInputAllocationBounded(t *testing.T) {
	api := newFuzzAPI(t)
	big := strings.Repeat("%FF", 1<<20/3)
	for _, target := range []string{
		"/api/v1/tenants/" + big + "/usage",
		"/api/v1/tenants?cursor=" + big,
		"/api/v1/tenants?" + strings.Repeat("a=1&", 1<<20/4),
		"/api/" + strings.Repeat("a/", 1<<20/2),
	} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const runs = 5
		for range runs {
			req := (&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}).WithContext(context.Background())
			rec := httptest.NewRecorder()
			api.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestURITooLong {
				t.Fatalf("%.60s…: %d", target, rec.Code)
			}
		}
		runtime.ReadMemStats(&after)
		perRequest := (after.TotalAlloc - before.TotalAlloc) / runs
		if limit := uint64(4 * len(target)); perRequest > limit {
			t.Errorf("%.40s… (%d bytes): %d bytes allocated per request, over %d", target, len(target), perRequest, limit)
		}
		t.Logf("%.30s… (%d bytes): %d bytes allocated per request", target, len(target), perRequest)
	}
}
