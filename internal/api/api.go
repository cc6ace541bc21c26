// Package api serves the read-only JSON API under /api/v1, a view of the
// billing core; openapi.yaml is its contract.
package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// Route patterns, also the endpoint label of the request metrics.
const (
	EndpointTenantUsage = "/api/v1/tenants/{tenant_id}/usage"
	EndpointTenants     = "/api/v1/tenants"
	EndpointPlans       = "/api/v1/plans"
	EndpointOpenAPI     = "/api/v1/openapi.yaml"
	// EndpointOther labels the paths the API does not serve.
	EndpointOther = "other"
)

// Endpoints lists every endpoint label.
var Endpoints = []string{EndpointTenantUsage, EndpointTenants, EndpointPlans, EndpointOpenAPI, EndpointOther}

// MaxURILength bounds the escaped path plus the query.
const MaxURILength = 4096

// requestTimeout bounds a request's reads.
const requestTimeout = 10 * time.Second

// Handler serves the API.
type Handler struct {
	service  *billing.Service
	logger   *slog.Logger
	metrics  *Metrics
	mux      *http.ServeMux
	notFound http.Handler
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// WithMetrics instruments the requests.
func WithMetrics(m *Metrics) Option { return func(h *Handler) { h.metrics = m } }

// New returns the API handler over service, to mount at /api/.
func New(service *billing.Service, opts ...Option) *Handler {
	h := &Handler{service: service, logger: slog.New(slog.DiscardHandler), mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	tenantUsage := h.handle(EndpointTenantUsage, nil, h.serveTenantUsage)
	// http.ServeMux takes a lone %2F segment for a trailing slash, so
	// tenant "/" needs a pattern of its own.
	h.mux.HandleFunc("/api/v1/tenants/%2F/usage", func(w http.ResponseWriter, r *http.Request) {
		r.SetPathValue("tenant_id", "/")
		tenantUsage.ServeHTTP(w, r)
	})
	h.handle(EndpointTenants, []string{"limit_type", "min_percentage", "max_percentage", "projected_min_percentage", "band",
		"limit", "cursor"}, h.serveTenants)
	h.handle(EndpointPlans, nil, h.servePlans)
	h.handle(EndpointOpenAPI, nil, h.serveOpenAPI)
	h.notFound = h.instrument(EndpointOther, func(w http.ResponseWriter, r *http.Request) {
		h.problem(w, r, errHTTP(http.StatusNotFound, fmt.Sprintf("no API resource at %.200q; see /api/v1/openapi.yaml", r.URL.EscapedPath())))
	})
	h.mux.Handle("/", h.notFound)
	return h
}

// ServeHTTP answers 404, not the mux's redirect, to an unclean path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !clean(r.URL) {
		h.notFound.ServeHTTP(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// clean reports whether http.ServeMux takes u's path as it is: the mux
// cleans the escaped path. An overlong path, which gets its 414 on its route,
// is checked without escaping it.
func clean(u *url.URL) bool {
	if len(u.Path) > MaxURILength {
		return cleanPath(u.Path) && (u.RawPath == "" || cleanPath(u.RawPath))
	}
	return cleanPath(u.EscapedPath())
}

func cleanPath(p string) bool {
	c := path.Clean(p)
	return strings.HasPrefix(p, "/") && (c == p || c != "/" && c == strings.TrimSuffix(p, "/"))
}

// tooLong checks MaxURILength without escaping a long path.
func tooLong(u *url.URL) bool {
	return len(u.Path)+len(u.RawQuery) > MaxURILength || len(u.EscapedPath())+len(u.RawQuery) > MaxURILength
}

// handle routes GET requests for pattern to serve.
func (h *Handler) handle(pattern string, params []string, serve func(http.ResponseWriter, *http.Request, map[string]string)) http.Handler {
	handler := h.instrument(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			h.problem(w, r, errHTTP(http.StatusMethodNotAllowed, fmt.Sprintf("method %.20q is not allowed: the API is read-only, use GET", r.Method)))
			return
		}
		q, perr := parseQuery(r.URL.RawQuery, params)
		if perr != nil {
			h.problem(w, r, perr)
			return
		}
		serve(w, r, q)
	})
	h.mux.Handle(pattern, handler)
	return handler
}

// instrument labels the request with endpoint, never with the path that
// may hold a tenant id, and answers 414 to an overlong one.
func (h *Handler) instrument(endpoint string, next http.HandlerFunc) http.Handler {
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if endpoint != EndpointOther {
			tracing.SetRoute(r.Context(), endpoint)
		}
		if tooLong(r.URL) {
			h.problem(w, r, errHTTP(http.StatusRequestURITooLong, fmt.Sprintf("the path and query together exceed %d bytes", MaxURILength)))
			return
		}
		next(w, r)
	})
	if h.metrics != nil {
		handler = h.metrics.instrument(endpoint, handler)
	}
	return handler
}

// TenantUsagePath returns a tenant's usage path, with "." and ".." escaped,
// as clients remove dot segments.
func TenantUsagePath(tenantID string) string {
	seg := url.PathEscape(tenantID)
	if tenantID == "." || tenantID == ".." {
		seg = strings.Repeat("%2E", len(tenantID))
	}
	return "/api/v1/tenants/" + seg + "/usage"
}
