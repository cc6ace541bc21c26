package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// Problem types (RFC 9457 "type"), as openapi.yaml lists them.
const (
	ProblemInvalidParameter  = "urn:billing-exporter:problem:invalid-parameter"
	ProblemUnknownTenant     = "urn:billing-exporter:problem:unknown-tenant"
	ProblemUsageUnavailable  = "urn:billing-exporter:problem:usage-unavailable"
	ProblemLimitsUnavailable = "urn:billing-exporter:problem:limits-unavailable"
	ProblemAboutBlank        = "about:blank"
)

// problem is an RFC 9457 problem details object.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	Parameter string `json:"parameter,omitempty"`

	cause      error // logged, never sent: it may name hosts
	retryAfter string
}

func errInvalidParam(name, why string) *problem {
	return &problem{Type: ProblemInvalidParameter, Title: "Invalid parameter", Status: http.StatusBadRequest,
		Detail: name + " " + why, Parameter: name}
}

func errHTTP(status int, detail string) *problem {
	return &problem{Type: ProblemAboutBlank, Title: http.StatusText(status), Status: status, Detail: detail}
}

func errUsageUnavailable(cause error) *problem {
	return &problem{Type: ProblemUsageUnavailable, Title: "Usage unavailable", Status: http.StatusServiceUnavailable,
		Detail: "the usage state in Redis cannot be read at the moment; no figures are given rather than stale ones",
		cause:  cause, retryAfter: "5"}
}

// problem writes p as application/problem+json and logs it.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, p *problem) {
	if p.Status != http.StatusRequestURITooLong {
		p.Instance = r.URL.EscapedPath()
	}
	switch {
	case p.Status == http.StatusServiceUnavailable:
		// The billing core logs a source going down once, not per request.
		h.logger.Debug("API request failed", "path", p.Instance, "status", p.Status, "type", p.Type, "err", p.cause)
	case p.Status >= 500:
		h.logger.Warn("API request failed", "path", p.Instance, "status", p.Status, "type", p.Type, "err", p.cause)
	default:
		h.logger.Debug("API request rejected", "path", p.Instance, "status", p.Status, "detail", p.Detail)
	}
	if p.retryAfter != "" {
		w.Header().Set("Retry-After", p.retryAfter)
	}
	writeJSON(w, "application/problem+json", p.Status, p)
}

// writeJSON writes v with a status, not to be cached.
func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the response failed", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// renderJSON writes a successful answer, traced on its own.
func renderJSON(ctx context.Context, w http.ResponseWriter, v any) {
	_, span := tracing.Start(ctx, "render JSON")
	writeJSON(w, "application/json", http.StatusOK, v)
	span.End()
}
