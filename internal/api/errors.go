package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// Problem types (RFC 9457 "type" members). They are opaque identifiers a
// client can switch on; openapi.yaml lists them. Plain HTTP failures (an
// unknown path, another method, an overlong URI) use "about:blank", whose
// title is the status text.
const (
	ProblemInvalidParameter  = "urn:billing-exporter:problem:invalid-parameter"
	ProblemUnknownTenant     = "urn:billing-exporter:problem:unknown-tenant"
	ProblemUsageUnavailable  = "urn:billing-exporter:problem:usage-unavailable"
	ProblemLimitsUnavailable = "urn:billing-exporter:problem:limits-unavailable"
	ProblemAboutBlank        = "about:blank"
)

// problem is an RFC 9457 problem details object. Parameter is an extension
// member naming the offending path or query parameter of a 400.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	Parameter string `json:"parameter,omitempty"`

	// cause is logged, never sent: it may name hosts or hold driver
	// messages that are no business of an API client.
	cause error
	// noInstance leaves Instance out (an overlong URI is not echoed).
	noInstance bool
	retryAfter string
}

func errInvalidParam(name, why string) *problem {
	return &problem{
		Type: ProblemInvalidParameter, Title: "Invalid parameter", Status: http.StatusBadRequest,
		Detail: name + " " + why, Parameter: name,
	}
}

func errNotFound(path string) *problem {
	return &problem{
		Type: ProblemAboutBlank, Title: http.StatusText(http.StatusNotFound), Status: http.StatusNotFound,
		Detail: fmt.Sprintf("no API resource at %.200q; see /api/v1/openapi.yaml", path),
	}
}

func errMethodNotAllowed(method string) *problem {
	return &problem{
		Type: ProblemAboutBlank, Title: http.StatusText(http.StatusMethodNotAllowed), Status: http.StatusMethodNotAllowed,
		Detail: fmt.Sprintf("method %.20q is not allowed: the API is read-only, use GET", method),
	}
}

func errURITooLong() *problem {
	return &problem{
		Type: ProblemAboutBlank, Title: http.StatusText(http.StatusRequestURITooLong), Status: http.StatusRequestURITooLong,
		Detail:     fmt.Sprintf("the path and query together exceed %d bytes", MaxURILength),
		noInstance: true,
	}
}

func errUnknownTenant(id string) *problem {
	return &problem{
		Type: ProblemUnknownTenant, Title: "Unknown tenant", Status: http.StatusNotFound,
		Detail: fmt.Sprintf("tenant %q has no usage this period and no row in the plans data", id),
	}
}

func errUsageUnavailable(cause error) *problem {
	return &problem{
		Type: ProblemUsageUnavailable, Title: "Usage unavailable", Status: http.StatusServiceUnavailable,
		Detail:     "the usage state in Redis cannot be read at the moment; no figures are given rather than stale ones",
		cause:      cause,
		retryAfter: "5",
	}
}

func errLimitsUnavailable(source string, cause error) *problem {
	return &problem{
		Type: ProblemLimitsUnavailable, Title: "Limits unavailable", Status: http.StatusServiceUnavailable,
		Detail:     fmt.Sprintf("the plans source (%s) has never been read successfully, so no limit or percentage can be stated", source),
		cause:      cause,
		retryAfter: "30",
	}
}

// problem writes p as application/problem+json and logs it.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, p *problem) {
	if !p.noInstance {
		p.Instance = r.URL.EscapedPath()
	}
	switch {
	case p.Status == http.StatusServiceUnavailable:
		// A source is down: the billing core logs that on change, not
		// once per request.
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

// writeJSON writes v with a status. The API's data changes with every
// read, so nothing is cached by clients or proxies.
func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unsupported type) gets here.
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

// renderJSON writes a successful answer, under a span of its own: encoding
// a long tenant list is the request's own work, apart from the read.
func renderJSON(ctx context.Context, w http.ResponseWriter, v any) {
	_, span := tracing.Start(ctx, "render JSON")
	writeJSON(w, "application/json", http.StatusOK, v)
	span.End()
}
