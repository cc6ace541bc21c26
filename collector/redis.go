package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/redisstore"
)

var (
	redisUpDesc = newDesc("redis", "up",
		"1 when this scrape read the usage state from Redis completely, else 0.")
	redisMemoryDesc = newDesc("redis", "memory_bytes",
		"Memory used by Redis (INFO used_memory).")
	redisConnectionsDesc = newDesc("redis", "connections_active",
		"Client connections to Redis (INFO connected_clients).")
)

func collectRedis(ch chan<- prometheus.Metric, sc *Scrape) {
	ch <- gauge(redisUpDesc, boolFloat(sc.Report.UsageUp()))
	if sc.InfoErr != nil {
		return
	}
	if v, ok := redisstore.InfoInt(sc.Info, "used_memory"); ok {
		ch <- gauge(redisMemoryDesc, float64(v))
	}
	if v, ok := redisstore.InfoInt(sc.Info, "connected_clients"); ok {
		ch <- gauge(redisConnectionsDesc, float64(v))
	}
}
