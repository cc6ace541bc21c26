package collector

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics: a fresh registry per request holding a Collector
// bound to the request's context and deadline, gathered together with the
// exporter's long-lived metrics.
type Handler struct {
	scraper       *Scraper
	static        prometheus.Gatherer
	logger        *slog.Logger
	timeoutOffset time.Duration
	maxTimeout    time.Duration
	inflight      chan struct{} // nil: unbounded
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

// NewHandler returns the /metrics handler.
func NewHandler(scraper *Scraper, static prometheus.Gatherer, logger *slog.Logger, opts ...HandlerOption) *Handler {
	h := &Handler{
		scraper:       scraper,
		static:        static,
		logger:        logger,
		timeoutOffset: 250 * time.Millisecond,
		maxTimeout:    10 * time.Second,
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(New(ctx, h.scraper, h.logger))
	// The per-scrape registry is gathered first so that the long-lived
	// histograms include the Redis calls this very scrape made.
	promhttp.HandlerFor(prometheus.Gatherers{reg, h.static}, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(h.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}
