package collector

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
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
	sections      sections
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
	if r.Method != http.MethodGet {
		// Any other method would run a full read for nothing (HEAD too:
		// its headers would need the body rendered). The API answers the
		// same way.
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.ScrapeTimeout(r))
	defer cancel()
	gzip := acceptsGzip(r.Header.Get("Accept-Encoding"))
	parts, ok := h.render(ctx, w, gzip)
	if !ok {
		return
	}
	// The scrape slot is released: the body goes out under a deadline of
	// its own, so a client that never reads holds one rendered body (not a
	// slot) and only until then. Prometheus gives up at its own timeout,
	// which the context's deadline plus the offset is; the offset is the
	// least a fast reader is given.
	deadline, _ := ctx.Deadline() // WithTimeout always sets one
	if least := time.Now().Add(h.timeoutOffset); deadline.Add(h.timeoutOffset).Before(least) {
		deadline = least
	} else {
		deadline = deadline.Add(h.timeoutOffset)
	}
	if err := http.NewResponseController(w).SetWriteDeadline(deadline); err != nil {
		h.logger.Debug("setting the write deadline", "err", err)
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if gzip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	w.Header().Set("Content-Length", strconv.Itoa(size))
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			h.logger.Debug("writing metrics", "err", err)
			return
		}
	}
}

// render reads under ctx and renders the whole exposition into memory,
// holding a scrape slot (--web.max-requests) only meanwhile; the body is
// parts, to be written in order. ok is false when the request was already
// answered (no slot free).
//
// The per-tenant families, nearly all of the body, come first and are
// rendered once per read and encoding, shared by every scrape of that read
// (tenantSection): clients that never read their body then pin one copy
// between them, not one each. The scrape's own small families follow; the
// gzip trailer's CRC continues from the shared part's.
func (h *Handler) render(ctx context.Context, w http.ResponseWriter, gzip bool) (parts [][]byte, ok bool) {
	if h.inflight != nil {
		select {
		case h.inflight <- struct{}{}:
			defer func() { <-h.inflight }()
		default:
			http.Error(w, "too many concurrent scrapes (--web.max-requests)", http.StatusServiceUnavailable)
			return nil, false
		}
	}
	read, err := h.service.Read(ctx)
	tenants, omitted := h.selectTenants(read)

	_, span := tracing.Start(ctx, "render metrics")
	defer tracing.End(span, nil)
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

	sec := h.tenantSection(read, tenants, gzip)
	// The small families, through client_golang's encoder.
	var small bytes.Buffer
	enc := expfmt.NewEncoder(&small, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			h.logger.Error("encoding metrics", "family", mf.GetName(), "err", err)
		}
	}
	var tail bytes.Buffer
	out := &stream{w: &tail, gzip: gzip, crc: sec.crc, size: sec.size}
	out.writeText(small.Bytes())
	_ = out.close() // writes to a bytes.Buffer do not fail
	if gzip {
		parts = append(parts, gzipHeader)
	}
	parts = append(parts, sec.body...)
	return append(parts, tail.Bytes()), true
}

// section is the per-tenant families of one read, rendered in one
// encoding: the text, or its deflate data with the CRC and size of the
// text (no gzip header or trailer).
type section struct {
	once      sync.Once
	body      [][]byte // in order; chunks rather than one buffer grown to the whole size
	crc, size uint32
}

// sections holds the sections of the latest read; a new read replaces them.
type sections struct {
	mu       sync.Mutex
	read     *billing.Read
	plain, z *section
	// text is the text of the section rendered last, whatever its read
	// and encoding: what the next rendering copies unchanged tenants from
	// (writeTenants).
	text *tenantText
}

// tenantSection returns the per-tenant families of read for tenants (which
// the handler's settings derive from read alone), rendered once per read
// and encoding. A read without tenants (a cut scrape's, which is its own)
// is not kept: it would only evict the sections of the shared read.
func (h *Handler) tenantSection(read *billing.Read, tenants []billing.TenantStatus, gzip bool) *section {
	sec := &section{}
	if read != nil && len(tenants) > 0 {
		h.sections.mu.Lock()
		if h.sections.read != read {
			h.sections.read, h.sections.plain, h.sections.z = read, &section{}, &section{}
		}
		sec = h.sections.plain
		if gzip {
			sec = h.sections.z
		}
		h.sections.mu.Unlock()
	}
	sec.once.Do(func() {
		h.sections.mu.Lock()
		prev := h.sections.text
		h.sections.mu.Unlock()
		// Kept as the rendered chunks: one buffer grown to the whole body
		// allocated and copied it about twice over, the largest allocation
		// of a scrape (BENCHMARKS.md, "Read modes").
		out := &stream{gzip: gzip}
		text, _ := writeTenants(out, tenants, prev, true) // kept parts: no write fails
		sec.body, sec.crc, sec.size = out.parts, out.crc, out.size
		if len(tenants) > 0 { // a cut scrape's empty rendering is nothing to copy from
			h.sections.mu.Lock()
			h.sections.text = text
			h.sections.mu.Unlock()
		}
	})
	return sec
}
