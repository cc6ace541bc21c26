package api

import (
	"net/http"
	"strconv"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's request metrics, labelled by route pattern (or
// "other"), never by raw path, so that no client adds series by inventing URLs.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates billing_api_requests_total{endpoint,status_code} and
// billing_api_request_duration_seconds{endpoint} and registers them with
// reg, panicking if that fails.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "billing",
			Subsystem: "api",
			Name:      "requests_total",
			Help:      "Requests to the side API by endpoint (route template, or \"other\") and HTTP status code.",
		}, []string{"endpoint", "status_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "billing",
			Subsystem: "api",
			Name:      "request_duration_seconds",
			Help:      "Time the side API took to answer, by endpoint (route template, or \"other\").",
			Buckets:   []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.duration)
	// Series exist before the first request, so that rate() sees zeros.
	for _, ep := range Endpoints {
		m.duration.WithLabelValues(ep)
		if ep != EndpointOther {
			m.requests.WithLabelValues(ep, "200")
		}
	}
	return m
}

// instrument counts and times the requests next answers under endpoint.
// promhttp.InstrumentHandlerCounter cannot fill the status_code label (it
// names it code), so httpsnoop captures the status.
func (m *Metrics) instrument(endpoint string, next http.Handler) http.Handler {
	requests := m.requests.MustCurryWith(prometheus.Labels{"endpoint": endpoint})
	duration := m.duration.WithLabelValues(endpoint)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := httpsnoop.CaptureMetrics(next, w, r)
		requests.WithLabelValues(strconv.Itoa(c.Code)).Inc()
		duration.Observe(c.Duration.Seconds())
	})
}
