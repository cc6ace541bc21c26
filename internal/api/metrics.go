package api

import (
	"net/http"
	"strconv"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's request metrics, labelled by route pattern, never
// by path, which clients could invent.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg, panicking if that fails.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_api_requests_total",
			Help: "Requests to the side API by endpoint (route template, or \"other\") and HTTP status code.",
		}, []string{"endpoint", "status_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "billing_api_request_duration_seconds",
			Help:    "Time the side API took to answer, by endpoint (route template, or \"other\").",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.duration)
	// Series exist before the first request, for rate() to see zeros.
	for _, ep := range Endpoints {
		m.duration.WithLabelValues(ep)
		if ep != EndpointOther {
			m.requests.WithLabelValues(ep, "200")
		}
	}
	return m
}

// instrument counts and times next's answers under endpoint; httpsnoop
// takes the status, as promhttp names its label code, not status_code.
func (m *Metrics) instrument(endpoint string, next http.Handler) http.Handler {
	requests := m.requests.MustCurryWith(prometheus.Labels{"endpoint": endpoint})
	duration := m.duration.WithLabelValues(endpoint)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := httpsnoop.CaptureMetrics(next, w, r)
		requests.WithLabelValues(strconv.Itoa(c.Code)).Inc()
		duration.Observe(c.Duration.Seconds())
	})
}
