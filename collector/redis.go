package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

var (
	redisUpDesc = newDesc("redis", "up",
		"1 when this scrape read the usage state from Redis completely, else 0.")
	redisMemoryDesc = newDesc("redis", "memory_bytes",
		"Memory used by Redis (INFO used_memory); in a cluster, summed over the masters.")
	redisConnectionsDesc = newDesc("redis", "connections_active",
		"Client connections to Redis (INFO connected_clients); in a cluster, summed over the masters.")

	redisInfoUpDesc = newDesc("redis", "info_up",
		"1 when Redis answered INFO this scrape, else 0 (an ACL without INFO, for one): the memory, connection and replication gauges are absent then.")
	redisMasterLinkUpDesc = newDesc("redis", "master_link_up",
		"Only when Redis is a replica: 1 while its link to its master is up (INFO master_link_status), else 0, when the usage read may be stale.")

	redisNodeUpDesc = newDesc("redis", "node_up",
		"Redis Cluster: 1 when this scrape reached the master node (INFO answered), else 0.", "node")
	redisNodeMemoryDesc = newDesc("redis", "node_memory_bytes",
		"Redis Cluster: memory used by the master node (INFO used_memory).", "node")
	redisNodeConnectionsDesc = newDesc("redis", "node_connections_active",
		"Redis Cluster: client connections to the master node (INFO connected_clients).", "node")
)

func collectRedis(ch chan<- prometheus.Metric, read *billing.Read) {
	ch <- gauge(redisUpDesc, boolFloat(read.Report.UsageUp()))
	info := read.Info
	for _, n := range info.Nodes {
		ch <- gauge(redisNodeUpDesc, boolFloat(n.Err == nil), n.Node)
		if n.Err == nil {
			collectInfo(ch, n.Fields, redisNodeMemoryDesc, redisNodeConnectionsDesc, n.Node)
		}
	}
	ch <- gauge(redisInfoUpDesc, boolFloat(info.Err == nil))
	if info.Err != nil {
		return
	}
	if info.Fields["role"] == "slave" {
		ch <- gauge(redisMasterLinkUpDesc, boolFloat(info.Fields["master_link_status"] == "up"))
	}
	collectInfo(ch, info.Fields, redisMemoryDesc, redisConnectionsDesc)
}

func collectInfo(ch chan<- prometheus.Metric, fields map[string]string, memory, connections *prometheus.Desc, labels ...string) {
	if v, ok := billing.InfoInt(fields, "used_memory"); ok {
		ch <- gauge(memory, float64(v), labels...)
	}
	if v, ok := billing.InfoInt(fields, "connected_clients"); ok {
		ch <- gauge(connections, float64(v), labels...)
	}
}
