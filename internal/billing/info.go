package billing

import (
	"context"
	"strconv"
)

// InfoReader reads Redis INFO for the health gauges. internal/redis/read implements
// it for one server and for a cluster (whose Info also carries every
// master's own).
type InfoReader interface {
	Info(ctx context.Context) Info
}

// Info is Redis INFO as one read saw it.
type Info struct {
	// Fields holds the memory and clients sections; for a cluster,
	// used_memory and connected_clients summed over the masters. Nil when
	// Err is set.
	Fields map[string]string
	Err    error
	// Nodes is each master's INFO, for a cluster only.
	Nodes []NodeInfo
}

// NodeInfo is the INFO of one master node of a cluster.
type NodeInfo struct {
	Node   string            // host:port, as the cluster announces it
	Fields map[string]string // INFO memory and clients; nil when Err is set
	Err    error
}

// InfoInt returns an integer INFO field, and whether it was present and
// numeric.
func InfoInt(fields map[string]string, name string) (int64, bool) {
	v, ok := fields[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
