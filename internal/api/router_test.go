package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
)

var apiPaths = []string{"/api/v1/tenants/1/usage", "/api/v1/tenants", "/api/v1/plans", "/api/v1/openapi.yaml"}

func TestMethodsAndUnknownPaths(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.redis.HSet("usage:1:202611", "messages", 1)

	t.Run("other methods", func(t *testing.T) {
		for _, path := range apiPaths {
			for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"} {
				r := do(t, e.client, method, e.server.URL+path)
				if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET" {
					t.Errorf("%s %s: %d, Allow %q", method, path, r.Status, r.Header.Get("Allow"))
				}
				if method != "HEAD" {
					r.wantStatus(t, http.StatusMethodNotAllowed)
				}
			}
		}
	})
	t.Run("unknown paths", func(t *testing.T) {
		for _, path := range []string{
			"/api/", "/api/v1", "/api/v1/", "/api/v2/plans", "/api/v1/plans/", "/api/v1/Plans",
			"/api/v1/tenants/", "/api/v1/tenants/1", "/api/v1/tenants/1/usage/", "/api/v1/tenants/1/usage/x",
			"/api/v1/tenants/1/Usage", "/api/v1/tenant/1/usage", "/api/v1/tenants/usage", "/api/v1/openapi.json",
		} {
			for _, method := range []string{"GET", "POST"} {
				r := do(t, e.client, method, e.server.URL+path)
				r.wantStatus(t, http.StatusNotFound)
				if p := r.problem(t); p.Type != ProblemAboutBlank || p.Instance != path {
					t.Errorf("%s %s: %+v", method, path, p)
				}
			}
		}
	})
	t.Run("percent-encoded literals", func(t *testing.T) {
		e.get("/api/v1/%70lans").wantStatus(t, http.StatusOK)
		e.get("/api/v1/tenants/%31/usage").wantStatus(t, http.StatusOK)
	})
	t.Run("uri too long", func(t *testing.T) {
		long := strings.Repeat("x", MaxURILength)
		for _, path := range append(slices.Clone(apiPaths), "/api/v1/nothing") {
			r := e.get(path + "?q=" + long)
			r.wantStatus(t, http.StatusRequestURITooLong)
			if p := r.problem(t); p.Instance != "" || strings.Contains(p.Detail, "xxxx") {
				t.Errorf("%s: 414 echoes the request: %+v", path, p)
			}
		}
		// Just under the bound: parsed, and rejected for what it says.
		path := "/api/v1/tenants?cursor="
		r := e.get(path + strings.Repeat("x", MaxURILength-len(path)))
		r.wantStatus(t, http.StatusBadRequest)
	})
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, envConfig{})
	r := e.get("/api/v1/openapi.yaml")
	if r.Status != http.StatusOK || r.contentType() != "application/yaml" || !bytes.Equal(r.Body, openapiYAML) {
		t.Fatalf("GET openapi.yaml: %d %q, %d bytes", r.Status, r.contentType(), len(r.Body))
	}
	// parseOpenAPI validates the document: every $ref resolves, every
	// schema, format and pattern is well formed.
	doc, err := parseOpenAPI(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The documented paths are exactly the routes.
	documented := doc.paths()
	slices.Sort(documented)
	routes := slices.DeleteFunc(slices.Clone(Endpoints), func(s string) bool { return s == EndpointOther })
	slices.Sort(routes)
	if !slices.Equal(documented, routes) {
		t.Errorf("documented paths %v, routes %v", documented, routes)
	}
	for _, p := range routes {
		if _, pattern := e.api.mux.Handler(httptest.NewRequest(http.MethodGet, strings.ReplaceAll(p, "{tenant_id}", "x"), nil)); pattern != p {
			t.Errorf("route template %s routes to %q", p, pattern)
		}
	}
	// The problem types the code uses are the document's.
	var problem struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Type struct {
							Enum []string `yaml:"enum"`
						} `yaml:"type"`
					} `yaml:"properties"`
				} `yaml:"Problem"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapiYAML, &problem); err != nil {
		t.Fatal(err)
	}
	want := []string{ProblemInvalidParameter, ProblemUnknownTenant, ProblemUsageUnavailable, ProblemLimitsUnavailable, ProblemAboutBlank}
	if got := problem.Components.Schemas.Problem.Properties.Type.Enum; !slices.Equal(got, want) {
		t.Errorf("Problem.type enum %v, want %v", got, want)
	}
}

// TestRequestMetrics: billing_api_requests_total carries route templates
// and status codes, never raw paths, and is exported on /metrics.
func TestRequestMetrics(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.redis.HSet("usage:1:202611", "messages", 1)
	requests := []struct {
		method, path string
	}{
		{"GET", "/api/v1/tenants/1/usage"},
		{"GET", "/api/v1/tenants/1/usage"},
		{"GET", "/api/v1/tenants/999999/usage"},
		{"GET", "/api/v1/tenants/1*/usage"},
		{"GET", "/api/v1/tenants/" + strings.Repeat("7", 5000) + "/usage"},
		{"GET", "/api/v1/tenants?min_percentage=80"},
		{"GET", "/api/v1/tenants?limit=0"},
		{"GET", "/api/v1/plans"},
		{"DELETE", "/api/v1/plans"},
		{"GET", "/api/v1/openapi.yaml"},
		{"GET", "/api/v2/secret-admin-path"},
		{"POST", "/api/v1/tenants/abc/usage/extra"},
	}
	for _, rq := range requests {
		do(t, e.client, rq.method, e.server.URL+rq.path)
	}
	want := map[[2]string]float64{
		{EndpointTenantUsage, "200"}: 2,
		{EndpointTenantUsage, "404"}: 1,
		{EndpointTenantUsage, "400"}: 1,
		{EndpointTenantUsage, "414"}: 1,
		{EndpointTenants, "200"}:     1,
		{EndpointTenants, "400"}:     1,
		{EndpointPlans, "200"}:       1,
		{EndpointPlans, "405"}:       1,
		{EndpointOpenAPI, "200"}:     1,
		{EndpointOther, "404"}:       2,
	}
	m := scrapetest.Get(t, nil, e.server.URL+"/metrics", nil)
	got := map[[2]string]float64{}
	for _, s := range m.Samples("billing_api_requests_total") {
		ep, code := label(s.GetLabel(), "endpoint"), label(s.GetLabel(), "status_code")
		if !slices.Contains(Endpoints, ep) {
			t.Errorf("endpoint label %q is not a route template", ep)
		}
		if v := s.GetCounter().GetValue(); v > 0 {
			got[[2]string{ep, code}] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("billing_api_requests_total{endpoint=%q,status_code=%q} = %v, want %v", k[0], k[1], got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for _, ep := range Endpoints {
		if s := m.Samples("billing_api_request_duration_seconds", "endpoint", ep); len(s) != 1 {
			t.Errorf("no duration histogram for %s", ep)
		}
	}
	if n := m.Samples("billing_api_request_duration_seconds", "endpoint", EndpointTenantUsage); len(n) == 1 && n[0].GetHistogram().GetSampleCount() != 5 {
		t.Errorf("usage duration count %d, want 5", n[0].GetHistogram().GetSampleCount())
	}
	scrapetest.PromtoolCheck(t, m.Body)
}
