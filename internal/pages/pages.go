// Package pages serves the server-rendered HTML pages for people: the
// tenants that need attention (/tenants, also as CSV) and one tenant's
// month (/tenants/{tenant_id}). It renders the billing core's reads and
// ranking; it computes no figure of its own.
package pages

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Paths of the pages.
const (
	PathTenants = "/tenants"
	PathTenant  = "/tenants/{tenant_id}"
)

// requestTimeout bounds a page's reads.
const requestTimeout = 10 * time.Second

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"count":      count,
	"counti":     func(n int) string { return count(int64(n)) },
	"amount":     amount,
	"percent":    percent,
	"width":      func(pct float64) string { return decimal(min(max(pct, 0), 100), 2) },
	"tenantPath": TenantPath,
}).ParseFS(templateFS, "templates/*.html"))

// Handler serves the pages.
type Handler struct {
	service    *billing.Service
	logger     *slog.Logger
	grafanaURL string
	mux        *http.ServeMux
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// WithGrafanaURL links each tenant's page to the per-tenant dashboard of
// the Grafana at u (the mixin's grafanaURL); empty: no link.
func WithGrafanaURL(u string) Option {
	return func(h *Handler) { h.grafanaURL = strings.TrimSuffix(u, "/") }
}

// New returns the pages' handler, to mount at PathTenants and PathTenants+"/".
func New(service *billing.Service, opts ...Option) *Handler {
	h := &Handler{service: service, logger: slog.New(slog.DiscardHandler), mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	h.mux.HandleFunc(PathTenants, h.serveList)
	h.mux.HandleFunc(PathTenant, h.serveTenant)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.error(w, http.StatusNotFound, "Not found", "There is no page at this address.")
	})
	return h
}

// ServeHTTP answers GET and HEAD.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.error(w, http.StatusMethodNotAllowed, "Method not allowed", "These pages are read-only.")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// TenantPath is a tenant's page, its id escaped as one path segment.
func TenantPath(tenantID string) string {
	seg := url.PathEscape(tenantID)
	if tenantID == "." || tenantID == ".." {
		seg = strings.Repeat("%2E", len(tenantID))
	}
	return PathTenants + "/" + seg
}

// CheckGrafanaURL accepts "" or an absolute http(s) URL without a query.
func CheckGrafanaURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fmt.Errorf("does not parse: %w", err)
	case p.Scheme != "http" && p.Scheme != "https", p.Host == "":
		return fmt.Errorf("%q is not an absolute http or https URL", u)
	case p.RawQuery != "" || p.Fragment != "":
		return fmt.Errorf("%q has a query or fragment; give Grafana's base URL", u)
	}
	return nil
}

// DashboardURL is the per-tenant Grafana dashboard of the mixin.
func DashboardURL(grafanaURL, tenantID string) string {
	return grafanaURL + "/d/billing-tenant/billing-per-tenant?var-tenant_id=" + url.QueryEscape(tenantID)
}

type errorPage struct {
	Title, Detail string
}

// error renders an error page; detail is shown as text.
func (h *Handler) error(w http.ResponseWriter, status int, title, detail string) {
	h.render(w, status, "error.html", errorPage{Title: title, Detail: detail})
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		h.logger.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// unavailable answers 503 when a read fails or has no usage or limits.
func (h *Handler) unavailable(w http.ResponseWriter, err error) {
	h.logger.Debug("page unavailable", "err", err)
	w.Header().Set("Retry-After", "30")
	h.error(w, http.StatusServiceUnavailable, "Data unavailable",
		"The usage or the plan limits cannot be read right now; try again shortly.")
}

// recentRead returns the core's recent full read, or answers 503.
func (h *Handler) recentRead(w http.ResponseWriter, r *http.Request) (*billing.Read, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	read, err := h.service.Recent(ctx)
	switch {
	case err != nil:
		h.unavailable(w, err)
	case !read.Report.UsageUp():
		h.unavailable(w, read.Report.UsageErr)
	case !read.Report.Plans.LimitsKnown():
		h.unavailable(w, fmt.Errorf("plans never read: %w", read.Report.Plans.Err))
	default:
		return read, true
	}
	return nil, false
}

// serveTenant renders one tenant's month.
func (h *Handler) serveTenant(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		h.error(w, http.StatusBadRequest, "Bad request", "This page takes no query parameters.")
		return
	}
	id := r.PathValue("tenant_id")
	if err := usage.ValidateID(usage.TenantID, id); err != nil {
		h.error(w, http.StatusBadRequest, "Bad request", "That is not a valid tenant id: "+err.Error()+".")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	tr, err := h.service.Tenant(ctx, id)
	switch {
	case errors.Is(err, billing.ErrUnknownTenant):
		h.error(w, http.StatusNotFound, "Unknown tenant",
			fmt.Sprintf("Tenant %q has no usage this period and no row in the plans data.", id))
		return
	case err != nil:
		h.unavailable(w, err)
		return
	}
	h.render(w, http.StatusOK, "tenant.html", h.newTenantPage(tr))
}
