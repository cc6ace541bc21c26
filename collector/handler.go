package collector

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/attribute"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/tracing"
)

// Handler serves /metrics under the scrape's deadline.
type Handler struct {
	service       *billing.Service
	static        prometheus.Gatherer
	logger        *slog.Logger
	timeoutOffset time.Duration
	maxTimeout    time.Duration
	inflight      chan struct{} // nil: unbounded
	tenantSeries  bool
	maxTenants    int
	unsent        *unsent
	sections      sections
}

// HandlerOption configures a Handler.
type HandlerOption func(*Handler)

// WithTimeoutOffset sets the margin before Prometheus' timeout.
func WithTimeoutOffset(d time.Duration) HandlerOption {
	return func(h *Handler) { h.timeoutOffset = d }
}

// WithMaxTimeout caps and defaults the scrape timeout.
func WithMaxTimeout(d time.Duration) HandlerOption { return func(h *Handler) { h.maxTimeout = d } }

// WithMaxRequests bounds concurrent scrapes; 0: unbounded.
func WithMaxRequests(n int) HandlerOption {
	return func(h *Handler) {
		if n > 0 {
			h.inflight = make(chan struct{}, n)
		}
	}
}

// WithTenantSeries toggles the per-tenant families.
func WithTenantSeries(on bool) HandlerOption { return func(h *Handler) { h.tenantSeries = on } }

// WithMaxTenants caps the tenants exported; 0: no cap.
func WithMaxTenants(n int) HandlerOption { return func(h *Handler) { h.maxTenants = n } }

// WithMaxUnsentBytes bounds the bytes held for bodies being sent.
func WithMaxUnsentBytes(n int64) HandlerOption { return func(h *Handler) { h.unsent.max = n } }

// NewHandler returns the /metrics handler.
func NewHandler(service *billing.Service, static prometheus.Gatherer, logger *slog.Logger, opts ...HandlerOption) *Handler {
	h := &Handler{
		service:       service,
		static:        static,
		logger:        logger,
		timeoutOffset: 250 * time.Millisecond,
		maxTimeout:    10 * time.Second,
		tenantSeries:  true,
		unsent:        newUnsent(0),
	}
	for _, o := range opts {
		o(h)
	}
	// Unset: a quarter of the Go memory limit, if one is set.
	if h.unsent.max <= 0 {
		h.unsent.max = 256 << 20
		if limit := debug.SetMemoryLimit(-1); limit < 1<<60 {
			h.unsent.max = limit / 4
		}
	}
	return h
}

// ScrapeTimeout returns the request's scrape timeout less the offset.
func (h *Handler) ScrapeTimeout(r *http.Request) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return h.maxTimeout
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || !(secs > 0 && secs <= 1e6) { // NaN too
		h.logger.Debug("ignoring an unusable X-Prometheus-Scrape-Timeout-Seconds", "value", v)
		return h.maxTimeout
	}
	timeout := time.Duration(secs * float64(time.Second))
	if timeout > h.timeoutOffset {
		timeout -= h.timeoutOffset
	}
	return min(timeout, h.maxTimeout)
}

func (h *Handler) selectTenants(read *billing.Read) (tenants billing.Statuses, omitted int) {
	if read == nil {
		return billing.Statuses{}, 0
	}
	all := read.Report.Tenants
	if !h.tenantSeries {
		return billing.Statuses{}, all.Len()
	}
	tenants = read.Report.MostPressed(h.maxTenants)
	return tenants, all.Len() - tenants.Len()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
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
	// The deadline bounds how long a client holds the body.
	deadline, _ := ctx.Deadline()
	if now := time.Now(); deadline.Before(now) {
		deadline = now
	}
	deadline = deadline.Add(h.timeoutOffset)
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(deadline); err != nil {
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
	resp := h.unsent.admit(parts, func() { _ = rc.SetWriteDeadline(time.Unix(1, 0)) })
	failed := true
	defer func() { h.unsent.done(resp, failed) }()
	for _, p := range parts {
		// In steps, so a reading client shows progress.
		for len(p) > 0 {
			n := min(len(p), writeStep)
			if _, err := w.Write(p[:n]); err != nil || !h.unsent.wrote(resp) {
				h.logger.Debug("writing metrics", "err", err)
				return
			}
			p = p[n:]
		}
	}
	failed = false
}

const writeStep = 64 << 10

// render renders the body while holding a scrape slot; ok is false when none is free.
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
	span.SetAttributes(attribute.Int("metrics.tenants", tenants.Len()), attribute.Int("metrics.tenants_omitted", omitted))

	reg := prometheus.NewRegistry()
	reg.MustRegister(New(read, err, omitted, h.logger), h.unsent)
	// First: the histograms then count this read's Redis calls.
	families, gatherErr := prometheus.Gatherers{reg, h.static}.Gather()
	if gatherErr != nil {
		h.logger.Error("gathering metrics", "err", gatherErr)
	}

	sec := h.tenantSection(read, tenants, gzip)
	var small bytes.Buffer
	enc := expfmt.NewEncoder(&small, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			h.logger.Error("encoding metrics", "family", mf.GetName(), "err", err)
		}
	}
	tail := &stream{gzip: gzip, crc: sec.crc, size: sec.size}
	tail.writeText(small.Bytes())
	tail.close()
	if gzip {
		parts = append(parts, gzipHeader)
	}
	parts = append(parts, sec.body...)
	return append(parts, tail.parts...), true
}

type section struct {
	once      sync.Once
	body      [][]byte
	crc, size uint32
}

type sections struct {
	mu       sync.Mutex
	read     *billing.Read
	plain, z *section
	last     [2]rendered // by gzip
}

// rendered is the text of the tenants of join seq.
type rendered struct {
	seq  uint64
	text *tenantText
}

// tenantSection renders read's per-tenant families once per encoding; a
// read without tenants is not kept.
func (h *Handler) tenantSection(read *billing.Read, tenants billing.Statuses, gzip bool) *section {
	sec := &section{}
	if read != nil && tenants.Len() > 0 {
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
	enc := 0
	if gzip {
		enc = 1
	}
	sec.once.Do(func() {
		var prev *tenantText
		var changed []string
		var rep *billing.Report
		if read != nil {
			rep = read.Report
		}
		everyTenant := rep != nil && tenants.Len() == rep.Tenants.Len()
		h.sections.mu.Lock()
		if last := h.sections.last[enc]; everyTenant && rep.Base != 0 && rep.Base == last.seq {
			prev, changed = last.text, rep.Changed
		}
		h.sections.mu.Unlock()
		out := &stream{gzip: gzip}
		text := writeTenants(out, tenants, prev, changed)
		sec.body, sec.crc, sec.size = out.parts, out.crc, out.size
		h.sections.mu.Lock()
		defer h.sections.mu.Unlock()
		switch {
		case everyTenant && tenants.Len() > 0:
			h.sections.last[enc] = rendered{seq: rep.Seq, text: text}
		case tenants.Len() > 0:
			h.sections.last[enc] = rendered{}
		}
	})
	return sec
}
