package collector

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/attribute"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// Handler serves /metrics. Per request it asks the billing core for a read
// under the scrape's deadline (billing.Service.Read: a read in flight is
// shared, a completed one never reused), gathers the small families through
// client_golang, and writes the per-tenant families with the fast writer.
type Handler struct {
	service       *billing.Service
	static        prometheus.Gatherer
	logger        *slog.Logger
	timeoutOffset time.Duration
	maxTimeout    time.Duration
	inflight      chan struct{} // nil: unbounded
	tenantSeries  bool
	maxTenants    int
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler)

// WithTimeoutOffset sets how much earlier than Prometheus' own timeout a
// scrape gives up, leaving time to write the response.
func WithTimeoutOffset(d time.Duration) HandlerOption {
	return func(h *Handler) { h.timeoutOffset = d }
}

// WithMaxTimeout caps the scrape deadline, and is the deadline when the
// client sends no X-Prometheus-Scrape-Timeout-Seconds.
func WithMaxTimeout(d time.Duration) HandlerOption {
	return func(h *Handler) { h.maxTimeout = d }
}

// WithMaxRequests bounds concurrent scrapes (0: unbounded); excess requests
// get 503 at once rather than queueing reads behind each other.
func WithMaxRequests(n int) HandlerOption {
	return func(h *Handler) {
		h.inflight = nil
		if n > 0 {
			h.inflight = make(chan struct{}, n)
		}
	}
}

// WithTenantSeries turns the per-tenant families on or off. Off, the fleet
// families (tenants per plan, over threshold) stay exact.
func WithTenantSeries(on bool) HandlerOption {
	return func(h *Handler) { h.tenantSeries = on }
}

// WithMaxTenants caps the tenants whose series are exported (0: no cap),
// keeping those the shipped alerts fire for, then those closest to their
// limits (billing.MostPressed).
func WithMaxTenants(n int) HandlerOption {
	return func(h *Handler) { h.maxTenants = n }
}

// NewHandler returns the /metrics handler.
func NewHandler(service *billing.Service, static prometheus.Gatherer, logger *slog.Logger, opts ...HandlerOption) *Handler {
	h := &Handler{
		service:       service,
		static:        static,
		logger:        logger,
		timeoutOffset: 250 * time.Millisecond,
		maxTimeout:    10 * time.Second,
		tenantSeries:  true,
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// ScrapeTimeout returns the deadline budget of a scrape from the
// X-Prometheus-Scrape-Timeout-Seconds header.
func (h *Handler) ScrapeTimeout(r *http.Request) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return h.maxTimeout
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || !(secs > 0 && secs <= 1e6) { // also rejects NaN
		h.logger.Debug("ignoring an unusable X-Prometheus-Scrape-Timeout-Seconds", "value", v)
		return h.maxTimeout
	}
	timeout := time.Duration(secs * float64(time.Second))
	if timeout > h.timeoutOffset {
		// Without room for the offset the whole budget is used instead.
		timeout -= h.timeoutOffset
	}
	return min(timeout, h.maxTimeout)
}

// selectTenants applies --metrics.tenant-series and --metrics.max-tenants.
func (h *Handler) selectTenants(read *billing.Read) (tenants []billing.TenantStatus, omitted int) {
	if read == nil {
		return nil, 0
	}
	all := read.Report.Tenants
	if !h.tenantSeries {
		return nil, len(all)
	}
	tenants = billing.MostPressed(all, h.maxTenants, read.Report.Period, read.Report.At)
	return tenants, len(all) - len(tenants)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.inflight != nil {
		select {
		case h.inflight <- struct{}{}:
			defer func() { <-h.inflight }()
		default:
			http.Error(w, "too many concurrent scrapes (--web.max-requests)", http.StatusServiceUnavailable)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.ScrapeTimeout(r))
	defer cancel()
	read, err := h.service.Read(ctx)
	tenants, omitted := h.selectTenants(read)
	h.render(ctx, w, r, read, err, tenants, omitted)
}

// render writes the exposition of read: the small families through
// client_golang, the per-tenant ones with the fast writer.
func (h *Handler) render(ctx context.Context, w http.ResponseWriter, r *http.Request, read *billing.Read, err error, tenants []billing.TenantStatus, omitted int) {
	_, span := tracing.Start(ctx, "render metrics")
	var writeErr error
	defer func() { tracing.End(span, writeErr) }()
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("metrics.tenants", len(tenants)), attribute.Int("metrics.tenants_omitted", omitted))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(New(read, err, omitted, h.logger))
	// The per-scrape registry is gathered first so that the long-lived
	// histograms include the Redis calls this very scrape made.
	families, gatherErr := prometheus.Gatherers{reg, h.static}.Gather()
	if gatherErr != nil {
		h.logger.Error("gathering metrics", "err", gatherErr)
	}

	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	gzip := acceptsGzip(r.Header.Get("Accept-Encoding"))
	if gzip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	out := newStream(bw, gzip)
	// The small families, through client_golang's encoder.
	var small bytes.Buffer
	enc := expfmt.NewEncoder(&small, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			h.logger.Error("encoding metrics", "family", mf.GetName(), "err", err)
		}
	}
	out.writeText(small.Bytes())
	if writeErr = writeTenants(out, tenants); writeErr != nil {
		h.logger.Debug("writing tenant metrics", "err", writeErr)
		return
	}
	if writeErr = out.close(); writeErr != nil {
		h.logger.Debug("writing metrics", "err", writeErr)
		return
	}
	if writeErr = bw.Flush(); writeErr != nil {
		h.logger.Debug("writing metrics", "err", writeErr)
	}
}
