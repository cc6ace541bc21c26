package mirror

import "github.com/prometheus/client_golang/prometheus"

var (
	readModeDesc = prometheus.NewDesc("billing_redis_read_mode",
		"The usage read in force (1): track (a mirror kept current by Redis key tracking) or scan (a full read per scrape).",
		[]string{"mode"}, nil)
	trackingUnavailableDesc = prometheus.NewDesc("billing_redis_tracking_unavailable",
		"1 when --redis.read-mode=track was asked for but Redis refused key tracking (or cannot offer it) and reads are full reads; the reason is logged; a NOAUTH, WRONGPASS or NOPERM refusal is retried every minute.",
		nil, nil)
	invalidationsDesc = prometheus.NewDesc("billing_redis_invalidations_total",
		"Key invalidations received from Redis key tracking (a flush counts one).", nil, nil)
	rereadLastDesc = prometheus.NewDesc("billing_redis_mirror_reread_keys",
		"Keys re-read by the last read of the mirror (0 after a full read).", nil, nil)
	rereadTotalDesc = prometheus.NewDesc("billing_redis_mirror_reread_keys_total",
		"Keys re-read by reads of the mirror.", nil, nil)
	fullReadsDesc = prometheus.NewDesc("billing_redis_full_reads_total",
		"Full reads of the usage state that seeded or replaced the mirror, by why the mirror could not be used.",
		[]string{"reason"}, nil)
	mirrorAgeDesc = prometheus.NewDesc("billing_redis_mirror_age_seconds",
		"Seconds since a full read last seeded or replaced the mirror; absent while there is none.", nil, nil)
	divergentDesc = prometheus.NewDesc("billing_redis_mirror_divergent_keys",
		"Keys the last self-check (--redis.resync-interval) found different between the mirror and a full read; expected 0.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Mirror) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{readModeDesc, trackingUnavailableDesc, invalidationsDesc, rereadLastDesc,
		rereadTotalDesc, fullReadsDesc, mirrorAgeDesc, divergentDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Mirror) Collect(ch chan<- prometheus.Metric) {
	mode := m.mode()
	ch <- prometheus.MustNewConstMetric(readModeDesc, prometheus.GaugeValue, 1, mode)
	unavailable := 0.0
	if r := m.scanReason.Load(); r != nil && *r != scanRequested {
		unavailable = 1
	}
	ch <- prometheus.MustNewConstMetric(trackingUnavailableDesc, prometheus.GaugeValue, unavailable)
	if mode != ModeTrack {
		return
	}
	ch <- prometheus.MustNewConstMetric(invalidationsDesc, prometheus.CounterValue, float64(m.invalidated.Load()))
	ch <- prometheus.MustNewConstMetric(rereadLastDesc, prometheus.GaugeValue, float64(m.rereadLast.Load()))
	ch <- prometheus.MustNewConstMetric(rereadTotalDesc, prometheus.CounterValue, float64(m.rereadTotal.Load()))
	for _, reason := range fullReadReasons {
		ch <- prometheus.MustNewConstMetric(fullReadsDesc, prometheus.CounterValue, float64(m.fullReads[reason].Load()), reason)
	}
	ch <- prometheus.MustNewConstMetric(divergentDesc, prometheus.GaugeValue, float64(m.divergentLast.Load()))
	if at := m.seededAt.Load(); at != 0 {
		ch <- prometheus.MustNewConstMetric(mirrorAgeDesc, prometheus.GaugeValue, float64(now().UnixNano()-at)/1e9)
	}
}
