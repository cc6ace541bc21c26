package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's own request metrics. Their endpoint label is a
// route template (or "other"), never a raw path, so that no client can add
// series by inventing URLs.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates billing_api_requests_total{endpoint,status_code} and
// billing_api_request_duration_seconds{endpoint} and registers them with
// reg (panicking if that fails, like prometheus.MustRegister).
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
	// Series that exist before the first request, so that rate() and
	// histogram_quantile() see zeros rather than nothing.
	for _, ep := range Endpoints {
		m.duration.WithLabelValues(ep)
		if ep != EndpointOther {
			m.requests.WithLabelValues(ep, "200")
		}
	}
	return m
}

func (m *Metrics) observe(endpoint string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}
