package api

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/collector"
	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/plans/postgres"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/redis/read"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// Every response any test receives goes through recordingTransport; after
// the tests, TestMain validates them all against openapi.yaml and, on a
// full run, checks that every documented response was seen at least once.

var recorded struct {
	mu        sync.Mutex
	exchanges []exchange
}

type recordingTransport struct {
	test string
	base http.RoundTripper
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	recorded.mu.Lock()
	recorded.exchanges = append(recorded.exchanges, exchange{
		test: rt.test, method: req.Method, path: req.URL.EscapedPath(), query: req.URL.RawQuery,
		status: resp.StatusCode, header: resp.Header.Clone(), body: body,
	})
	recorded.mu.Unlock()
	return resp, nil
}

// newClient returns a client whose exchanges are validated at the end. It
// follows no redirects: the API issues none, and one would be recorded as
// an undocumented status.
func newClient(t *testing.T) *http.Client {
	return &http.Client{
		Transport:     &recordingTransport{test: t.Name(), base: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = validateRecorded()
	}
	os.Exit(code)
}

func validateRecorded() int {
	doc, err := parseOpenAPI(openapiYAML)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	recorded.mu.Lock()
	defer recorded.mu.Unlock()
	failed := false
	seen := map[responseKey]bool{}
	for _, e := range recorded.exchanges {
		key, errs := doc.check(e)
		seen[key] = true
		if len(errs) > 0 {
			failed = true
			fmt.Fprintf(os.Stderr, "FAIL: response does not match openapi.yaml: %s\n\t%s\n\tbody: %.300s\n", e, strings.Join(errs, "\n\t"), e.body)
		}
	}
	// Coverage only means something when every test ran.
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" && !testing.Short() {
		for _, k := range doc.documentedResponses() {
			if !seen[k] {
				failed = true
				fmt.Fprintf(os.Stderr, "FAIL: openapi.yaml documents %s %s → %s, which no test exercised\n", k.method, k.path, k.status)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "openapi.yaml: validated %d recorded responses\n", len(recorded.exchanges))
	if failed {
		return 1
	}
	return 0
}

// november is a fixed clock inside period 202611 (UTC): 14.5 days of 30
// have passed.
var november = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

// The plans issue's acceptance data.
const plansIssueSQL = `
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions)
VALUES (1, 'starter', 5000, NULL, NULL, NULL);
INSERT INTO tenants (id, name, plan_id) VALUES (1, 'one', 1), (2, 'two', 1), (3, 'three', NULL);`

var plansIssueDefaults = plans.Limits{"messages": 1000, "storage": 104857600, "users": 2, "whatsappSessions": 1}

// plansMode says where an env's plans come from.
type plansMode int

const (
	noPlans        plansMode = iota // no plans source: everyone on the defaults
	plansPostgres                   // PostgreSQL with the plans issue's data
	plansNeverRead                  // a PostgreSQL DSN nothing listens on
)

type envConfig struct {
	plans     plansMode
	clock     time.Time // zero: november
	ticking   bool      // the clock advances with real time from clock
	location  *time.Location
	apiOpts   []Option
	svcOpts   []billing.Option // after the env's own
	storeOpts []conn.Option
	// With plansPostgres: the data loaded (default plansIssueSQL), and the
	// plans query (default postgres.DefaultQuery).
	plansSQL, plansQuery string
	thresholds           []float64 // nil: billing.DefaultThresholds
}

// env is a real redis-server (and PostgreSQL when asked), a billing
// service over them, and the API and /metrics served as main.go serves
// them: on one mux, the API at /api/.
type env struct {
	t        *testing.T
	redis    *testserver.Redis
	pg       *testserver.Postgres
	store    *read.Reader
	service  *billing.Service
	svcOpts  []billing.Option // what service was built with
	registry *prometheus.Registry
	api      *Handler
	server   *httptest.Server // the mux: /api/ and /metrics
	direct   string           // URL of the API handler served alone
	client   *http.Client
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	return newEnvOnRedis(t, testserver.StartRedis(t), cfg)
}

// newEnvOnRedis builds an env over a redis-server already started, so that
// table cases can share one.
func newEnvOnRedis(t *testing.T, redis *testserver.Redis, cfg envConfig) *env {
	t.Helper()
	e := &env{t: t, redis: redis, registry: prometheus.NewRegistry(), client: newClient(t)}
	target, err := conn.ParseTarget(e.redis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	in := collector.NewInstruments(e.registry)
	storeOpts := append([]conn.Option{
		conn.WithObserver(in.ObserveRedis),
		conn.WithTimeouts(time.Second, 2*time.Second, 2*time.Second),
	}, cfg.storeOpts...)
	if e.store, err = read.New(target, storeOpts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })

	now := cfg.clock
	if now.IsZero() {
		now = november
	}
	clock := func() time.Time { return now }
	if cfg.ticking {
		base := time.Now()
		clock = func() time.Time { return now.Add(time.Since(base)) }
	}
	svcOpts := []billing.Option{
		billing.WithClock(clock),
	}
	config := billing.Config{Defaults: plansIssueDefaults, Thresholds: cfg.thresholds}
	if cfg.location != nil {
		svcOpts = append(svcOpts, billing.WithLocation(cfg.location))
	}
	switch cfg.plans {
	case plansPostgres:
		e.pg = testserver.StartPostgres(t)
		testserver.LoadSchema(t, e.pg, "../../examples/schema.sql")
		data := plansIssueSQL
		if cfg.plansSQL != "" {
			data = cfg.plansSQL
		}
		e.pg.Exec(data)
		config.Plans, config.PlansName = e.postgresSource(e.pg.DSN(), postgres.WithQuery(cfg.plansQuery)), "postgres"
	case plansNeverRead:
		dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=1&sslmode=disable", testserver.FreePort(t))
		config.Plans, config.PlansName = e.postgresSource(dsn), "postgres"
	}
	e.svcOpts = append(append(svcOpts, billing.WithConfig(config)), cfg.svcOpts...)
	e.service = billing.New(e.store, e.svcOpts...)
	e.api = New(e.service, append([]Option{WithMetrics(NewMetrics(e.registry))}, cfg.apiOpts...)...)

	mux := http.NewServeMux()
	mux.Handle("/api/", e.api)
	mux.Handle("/metrics", collector.NewHandler(e.service, e.registry, slog.New(slog.DiscardHandler)))
	e.server = httptest.NewServer(mux)
	t.Cleanup(e.server.Close)
	e.direct = newAPIServer(t, e.api)
	return e
}

func (e *env) postgresSource(dsn string, opts ...postgres.Option) plans.Source {
	e.t.Helper()
	db, err := postgres.Open("dsn", func() (string, error) { return dsn, nil })
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return postgres.New(db, opts...)
}

// seedPlansIssue writes the plans issue's usage for period 202611.
func (e *env) seedPlansIssue() {
	e.redis.HSet("usage:1:202611", "messages", 4250)
	e.redis.HSet("usage:3:202611", "messages", 10)
}

// response is one API answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) contentType() string { return r.Header.Get("Content-Type") }

// get requests a path (with query) on the env's mux.
func (e *env) get(path string) *response {
	e.t.Helper()
	return do(e.t, e.client, http.MethodGet, e.server.URL+path)
}

func do(t *testing.T, client *http.Client, method, url string) *response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %.200s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// decode unmarshals a body into v (numbers as float64 in maps).
func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// wantStatus fails unless the response has the status and, for errors, is
// a problem+json of that status.
func (r *response) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	wantCT := "application/json"
	if status >= 400 {
		wantCT = "application/problem+json"
	}
	if ct := r.contentType(); ct != wantCT {
		t.Fatalf("content type %q, want %q", ct, wantCT)
	}
}

// problemBody is a decoded problem+json.
type problemBody struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	Parameter string `json:"parameter"`
}

func (r *response) problem(t *testing.T) problemBody {
	t.Helper()
	var p problemBody
	r.decode(t, &p)
	if p.Status != r.Status {
		t.Errorf("problem status %d in a %d response", p.Status, r.Status)
	}
	return p
}

// JSON views as a client sees them.
type metricJSON struct {
	Used                *int64           `json:"used"`
	Unavailable         *unavailableJSON `json:"unavailable"`
	Limit               *int64           `json:"limit"`
	Remaining           *int64           `json:"remaining"`
	Exceeded            *bool            `json:"exceeded"`
	Reached             *bool            `json:"reached"`
	Band                *string          `json:"band"`
	Percentage          *float64         `json:"percentage"`
	MonthlyReset        bool             `json:"monthly_reset"`
	Projected           *int64           `json:"projected"`
	ProjectedPercentage *float64         `json:"projected_percentage"`
	ProjectedLimitDate  *string          `json:"projected_limit_date"`
}

type planJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type periodJSON struct {
	ID              string  `json:"id"`
	Start           string  `json:"start"`
	End             string  `json:"end"`
	ElapsedFraction float64 `json:"elapsed_fraction"`
}

type usageJSON struct {
	TenantID        string                `json:"tenant_id"`
	GeneratedAt     string                `json:"generated_at"`
	Period          periodJSON            `json:"period"`
	Plan            *planJSON             `json:"plan"`
	UsingDefaults   *bool                 `json:"using_defaults"`
	LimitsKnown     bool                  `json:"limits_known"`
	PlansStale      bool                  `json:"plans_stale"`
	PlansAgeSeconds *float64              `json:"plans_age_seconds"`
	UsageRecorded   bool                  `json:"usage_recorded"`
	Metrics         map[string]metricJSON `json:"metrics"`
}

type listItemJSON struct {
	TenantID          string    `json:"tenant_id"`
	Name              *string   `json:"name"`
	UsagePath         string    `json:"usage_path"`
	Plan              *planJSON `json:"plan"`
	UsingDefaults     bool      `json:"using_defaults"`
	LimitType         string    `json:"limit_type"`
	HighestPercentage float64   `json:"highest_percentage"`
	metricJSON
}

type listJSON struct {
	LimitType       string         `json:"limit_type"`
	MinPercentage   float64        `json:"min_percentage"`
	Limit           int            `json:"limit"`
	Period          periodJSON     `json:"period"`
	GeneratedAt     string         `json:"generated_at"`
	DataAgeSeconds  float64        `json:"data_age_seconds"`
	PlansStale      bool           `json:"plans_stale"`
	PlansAgeSeconds *float64       `json:"plans_age_seconds"`
	Total           int            `json:"total"`
	Tenants         []listItemJSON `json:"tenants"`
	NextCursor      *string        `json:"next_cursor"`
}

func (l *listJSON) ids() []string {
	out := []string{}
	for _, t := range l.Tenants {
		out = append(out, t.TenantID)
	}
	return out
}

type plansJSON struct {
	GeneratedAt           string   `json:"generated_at"`
	DataAgeSeconds        float64  `json:"data_age_seconds"`
	Source                *string  `json:"source"`
	PlansStale            bool     `json:"plans_stale"`
	PlansAgeSeconds       *float64 `json:"plans_age_seconds"`
	TenantCountsAvailable bool     `json:"tenant_counts_available"`
	Defaults              struct {
		Limits  map[string]int64 `json:"limits"`
		Tenants *int             `json:"tenants"`
	} `json:"defaults"`
	Plans []struct {
		ID      string           `json:"id"`
		Name    string           `json:"name"`
		Limits  map[string]int64 `json:"limits"`
		Tenants *int             `json:"tenants"`
	} `json:"plans"`
}

func (e *env) usage(id string) *usageJSON {
	e.t.Helper()
	r := e.get("/api/v1/tenants/" + id + "/usage")
	r.wantStatus(e.t, http.StatusOK)
	var u usageJSON
	r.decode(e.t, &u)
	return &u
}

func (e *env) list(query string) *listJSON {
	e.t.Helper()
	r := e.get("/api/v1/tenants" + query)
	r.wantStatus(e.t, http.StatusOK)
	var l listJSON
	r.decode(e.t, &l)
	return &l
}

func (e *env) plans() *plansJSON {
	e.t.Helper()
	r := e.get("/api/v1/plans")
	r.wantStatus(e.t, http.StatusOK)
	var p plansJSON
	r.decode(e.t, &p)
	return &p
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// newAPIServer serves h directly (not behind a mux) and returns its URL.
func newAPIServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
