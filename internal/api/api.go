// Package api serves billing_exporter's read-only JSON API under /api/v1: one tenant's usage, the tenants nearest their limits, and
// the plans. It is a view of the billing core, like the collector: it never
// computes a limit or a percentage of its own, so that the API and /metrics
// agree for the same state.
//
// The API is described by openapi.yaml, embedded and served at
// /api/v1/openapi.yaml; the tests validate every response they see against
// it. Errors are RFC 9457 problem details (application/problem+json).
//
// Wiring:
//
//	mux.Handle("/api/", api.New(service, api.WithLogger(logger), api.WithMetrics(api.NewMetrics(registry))))
//
// The handler routes on the request's escaped path itself (no
// http.StripPrefix in front of it), segment by segment, so that a tenant id
// holding '/' or '%' or being '..' is reachable percent-encoded (%2F, %25,
// %2E%2E; see TenantUsagePath). An http.ServeMux in front cleans only the
// escaped path, so encoded dots reach the API; a literal dot segment is
// redirected by the mux before the API sees it.
//
// Decisions, also stated in openapi.yaml:
//
//   - The usage endpoint reads one key (billing.Service.Tenant), never
//     scans. The tenant list and the plans answer from the billing core's
//     recent full read (billing.Service.Recent): shared with scrapes and
//     other requests in flight, reused while younger than the core's max
//     age, so a burst of requests costs one SCAN pass. The API keeps no
//     read of its own.
//   - remaining is limit - used clamped at 0; exceeded (used > limit) and
//     percentage (unrounded, the value of billing_usage_percentage) say how
//     far past it a tenant is.
//   - projected = round(used / elapsed fraction) for monthly-reset types
//     only, and null until WithProjectionMinElapsed (24h) of the period has
//     passed.
//   - Limits unknown (a plans source never read): the list and the plans
//     answer 503 limits-unavailable, because an empty list would read as
//     "nobody is near a limit"; the usage endpoint still gives usage, with
//     limits_known false and every limit null.
//   - The list cursor is unpadded base64url of a small JSON position
//     (limit type, percentage, tenant id): keyset pagination that survives
//     a refresh between pages.
//   - Query parameters are strict: unknown, repeated or empty parameters
//     and out-of-range values are 400s naming the parameter, never clamped
//     or ignored.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Route templates: the endpoint label of the request metrics, never a raw
// path.
const (
	EndpointTenantUsage = "/api/v1/tenants/{tenant_id}/usage"
	EndpointTenants     = "/api/v1/tenants"
	EndpointPlans       = "/api/v1/plans"
	EndpointOpenAPI     = "/api/v1/openapi.yaml"
	// EndpointOther labels requests for paths the API does not serve.
	EndpointOther = "other"
)

// Endpoints lists every endpoint label, EndpointOther included.
var Endpoints = []string{EndpointTenantUsage, EndpointTenants, EndpointPlans, EndpointOpenAPI, EndpointOther}

// MaxURILength bounds the escaped path plus the query string of a request;
// longer ones get 414 before anything is parsed.
const MaxURILength = 4096

// Defaults of the options.
const (
	// defaultRequestTimeout bounds the reads one request may trigger.
	defaultRequestTimeout       = 10 * time.Second
	defaultProjectionMinElapsed = 24 * time.Hour
)

// Handler serves the API. It is safe for concurrent use.
type Handler struct {
	service              *billing.Service
	logger               *slog.Logger
	metrics              *Metrics
	rankings             rankings
	requestTimeout       time.Duration
	projectionMinElapsed time.Duration
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger: 5xx responses are logged at warn level with
// their cause, client errors at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(h *Handler) {
		if l != nil {
			h.logger = l
		}
	}
}

// WithMetrics sets where request counts and durations go; without it the
// API is not instrumented.
func WithMetrics(m *Metrics) Option { return func(h *Handler) { h.metrics = m } }

// WithProjectionMinElapsed sets how much of a period must have passed before
// an end-of-period projection is given (default 24h): earlier, a few
// messages in the first minutes would project to absurd figures.
func WithProjectionMinElapsed(d time.Duration) Option {
	return func(h *Handler) { h.projectionMinElapsed = max(d, 0) }
}

// New returns the API handler over the billing service. Mount it at /api/.
func New(service *billing.Service, opts ...Option) *Handler {
	h := &Handler{
		service:              service,
		logger:               slog.New(slog.DiscardHandler),
		requestTimeout:       defaultRequestTimeout,
		projectionMinElapsed: defaultProjectionMinElapsed,
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// route is one endpoint: its template, the query parameters it accepts and
// its handler.
type route struct {
	endpoint string
	params   []string
	serve    func(h *Handler, w http.ResponseWriter, r *http.Request, req *request)
}

var (
	tenantUsageRoute = &route{EndpointTenantUsage, nil, (*Handler).serveTenantUsage}
	tenantsRoute     = &route{EndpointTenants, []string{"limit_type", "min_percentage", "limit", "cursor"}, (*Handler).serveTenants}
	plansRoute       = &route{EndpointPlans, nil, (*Handler).servePlans}
	openAPIRoute     = &route{EndpointOpenAPI, nil, (*Handler).serveOpenAPI}
)

// request is what routing and parameter validation extracted.
type request struct {
	tenantID string            // the unescaped {tenant_id}, validated
	query    map[string]string // each accepted parameter, at most once
}

// match finds the route of an escaped path. For the usage route it returns
// the still-escaped {tenant_id} segment. Matching is on path segments, each
// unescaped on its own, so that %2F inside a segment never acts as a
// separator.
func match(escapedPath string) (rt *route, rawTenantID string) {
	// No route has more than six segments: splitting off at most seven
	// keeps the cost of a hostile path of a million slashes constant
	// (this runs before the URI length check, to label the request).
	segs := strings.SplitN(escapedPath, "/", 7)
	if len(segs) < 4 || segs[0] != "" {
		return nil, ""
	}
	literal := func(i int, want string) bool {
		s, err := url.PathUnescape(segs[i])
		return err == nil && s == want
	}
	if !literal(1, "api") || !literal(2, "v1") {
		return nil, ""
	}
	switch {
	case len(segs) == 4 && literal(3, "tenants"):
		return tenantsRoute, ""
	case len(segs) == 4 && literal(3, "plans"):
		return plansRoute, ""
	case len(segs) == 4 && literal(3, "openapi.yaml"):
		return openAPIRoute, ""
	case len(segs) == 6 && literal(3, "tenants") && literal(5, "usage"):
		return tenantUsageRoute, segs[4]
	}
	return nil, ""
}

// ServeHTTP routes, validates the request line, and records the request
// metrics under the route template.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	endpoint := h.serve(rec, r)
	if h.metrics != nil {
		h.metrics.observe(endpoint, rec.code(), time.Since(start))
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (endpoint string) {
	path := r.URL.EscapedPath()
	rt, rawID := match(path)
	endpoint = EndpointOther
	if rt != nil {
		endpoint = rt.endpoint
		// The template, never the path: the path may hold a tenant id.
		tracing.SetRoute(r.Context(), endpoint)
	}
	if len(path)+len(r.URL.RawQuery) > MaxURILength {
		h.problem(w, r, errURITooLong())
		return endpoint
	}
	if rt == nil {
		h.problem(w, r, errNotFound(path))
		return endpoint
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.problem(w, r, errMethodNotAllowed(r.Method))
		return endpoint
	}
	req := &request{}
	if rt == tenantUsageRoute {
		id, perr := parseTenantID(rawID)
		if perr != nil {
			h.problem(w, r, perr)
			return endpoint
		}
		req.tenantID = id
	}
	q, perr := parseQuery(r.URL.RawQuery, rt.params)
	if perr != nil {
		h.problem(w, r, perr)
		return endpoint
	}
	req.query = q
	rt.serve(h, w, r, req)
	return endpoint
}

// parseTenantID unescapes and validates the {tenant_id} segment before
// anything reaches Redis: usage.ValidateID (non-empty, at most
// usage.MaxTenantIDLen bytes, printable UTF-8, no glob characters). The
// segment is unescaped on its own after routing, so an encoded '/' (%2F)
// or dot segment (%2E%2E) is just part of the id: every id the exporter
// reads from a key (a/b, .., 50%) can be asked for.
func parseTenantID(raw string) (string, *problem) {
	id, err := url.PathUnescape(raw)
	if err != nil {
		return "", errInvalidParam("tenant_id", "is not validly percent-encoded")
	}
	if err := usage.ValidateID(usage.TenantID, id); err != nil {
		return "", errInvalidParam("tenant_id", "is not a valid tenant id: "+err.Error())
	}
	return id, nil
}

// TenantUsagePath returns the path of a tenant's usage, with the id
// percent-encoded as one segment. '.' and '..' are encoded as %2E and
// %2E%2E: left as they are, they are dot segments, which clients and
// http.ServeMux remove from a path before it arrives.
func TenantUsagePath(tenantID string) string {
	seg := url.PathEscape(tenantID)
	if tenantID == "." || tenantID == ".." {
		seg = strings.Repeat("%2E", len(tenantID))
	}
	return "/api/v1/tenants/" + seg + "/usage"
}

// timeout returns the request's context bounded by the request timeout.
func (h *Handler) timeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.requestTimeout)
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
